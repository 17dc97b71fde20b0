package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

func init() {
	register(command{name: "devices", summary: "list Vulkan devices, their properties and which one is used", run: runDevices})
}

func runDevices(args []string, stdout io.Writer) error {
	fs := newFlags("devices", "devices [--json] [--device SEL]")
	asJSON := fs.Bool("json", false, "print one JSON object per device")
	opts := deviceFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	infos, err := gpu.Devices(opts())
	if err != nil && len(infos) == 0 {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, in := range infos {
			if e := enc.Encode(in); e != nil {
				return e
			}
		}
		return err
	}
	for i, in := range infos {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printDevice(stdout, in)
	}
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printDevice(w io.Writer, in gpu.DeviceInfo) {
	mark := ""
	if in.Chosen {
		mark = "  [chosen]"
	}
	fmt.Fprintf(w, "device %d: %s%s\n", in.Index, in.Name, mark)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, a...)...) }
	row("type", "%s", in.TypeName)
	row("vendor/device id", "0x%04x / 0x%04x", in.VendorID, in.DeviceID)
	row("API version", "%s", in.API)
	drv := in.Driver
	if in.DriverName != "" {
		drv = fmt.Sprintf("%s (%s %s)", in.Driver, in.DriverName, in.DriverInfo)
	}
	row("driver version", "%s", drv)
	sg := fmt.Sprintf("%d", in.SubgroupSize)
	if in.MinSubgroupSize != in.MaxSubgroupSize {
		sg += fmt.Sprintf(" (%d..%d)", in.MinSubgroupSize, in.MaxSubgroupSize)
	}
	row("subgroup size", "%s; ops: %s", sg, strings.Join(in.SubgroupOpNames, " "))
	row("max shared memory", "%s", gpu.FormatBytes(int64(in.MaxSharedMemory)))
	row("max storage buffer range", "%s", gpu.FormatBytes(int64(in.MaxStorageBufferRange)))
	row("max texel buffer elements", "%d", in.MaxTexelBufferElements)
	row("max workgroup", "%d invocations, size %v, count %v", in.MaxWorkgroupInvocations, in.MaxWorkgroupSize, in.MaxWorkgroupCount)
	row("max push constants", "%d bytes", in.MaxPushConstantsSize)
	for i, h := range in.Heaps {
		kind := "host"
		if h.DeviceLocal {
			kind = "device-local"
		}
		row(fmt.Sprintf("memory heap %d", i), "%s %s", gpu.FormatBytes(int64(h.Size)), kind)
	}
	row("unified memory", "%s", yesNo(in.UnifiedMemory()))
	row("staged transfers", "%s", yesNo(in.StagedTransfers))
	row("fp16 / int8 arithmetic", "%s / %s", yesNo(in.Float16), yesNo(in.Int8))
	row("16-bit storage", "%s", yesNo(in.StorageBuffer16Bit))
	row("buffer device address", "%s", yesNo(in.BufferDeviceAddress))
	cm := yesNo(in.CooperativeMatrix)
	if len(in.CoopMatShapeNames) > 0 {
		cm += ": " + strings.Join(in.CoopMatShapeNames, ", ")
	}
	for _, e := range in.NotQueried {
		if e == "VK_KHR_cooperative_matrix" {
			cm = "not queried (the validation layer predates " + e + ")"
		}
	}
	row("cooperative matrix", "%s", cm)
	ts := "no"
	if in.TimestampValidBits > 0 {
		ts = fmt.Sprintf("%d bits, %.3g ns/tick", in.TimestampValidBits, in.TimestampPeriod)
	}
	row("timestamps", "%s", ts)
	tw.Flush()
}
