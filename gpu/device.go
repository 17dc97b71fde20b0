package gpu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	vk "github.com/vulkan-go/vulkan"
)

// Environment variables read by OptionsFromEnv.
const (
	// DeviceEnv selects a device by index or by a substring of its name.
	DeviceEnv = "SHLPT_VK_DEVICE"
	// ValidateEnv=1 enables the Khronos validation layer; every message it
	// reports becomes an error of the operation that caused it.
	ValidateEnv = "SHLPT_VK_VALIDATE"
	// PipelineCacheEnv names the on-disk pipeline cache folder; "off" disables it.
	PipelineCacheEnv = "SHLPT_VK_PIPELINE_CACHE"
	// ForceStagingEnv=1 makes every transfer go through staging copies, as
	// on a discrete GPU (see Options.ForceStaging).
	ForceStagingEnv = "SHLPT_VK_FORCE_STAGING"
)

// Options configure Open.
type Options struct {
	// Device selects the physical device by index, by PCI vendor id
	// ("vendor:0x10de" for NVIDIA) or by a case-insensitive substring of its
	// name. Empty picks discrete > integrated > virtual > CPU.
	Device string
	// Validate enables VK_LAYER_KHRONOS_validation with synchronization
	// validation. Any message it reports is returned as an error
	// (wrapping ErrValidation) by the operation during which it arrived.
	Validate bool
	// PipelineCacheDir holds the on-disk VkPipelineCache. Empty means the
	// user cache folder (~/.cache/shlpt-vk); "off" disables the disk cache.
	PipelineCacheDir string
	// MaxBindingBytes, when positive, caps what one binding may hold below
	// the device's own limits (see Device.SetMaxBindingBytes), so that the
	// code splitting large operands runs on devices that bind gigabytes.
	MaxBindingBytes int64
	// ForceStaging keeps tensor memory unmapped even where the device could
	// map it, so that every upload and readback takes the staging path that
	// discrete GPUs take (through a small staging buffer, in several
	// chunks): the way to run that path on lavapipe.
	ForceStaging bool

	// envErr is OptionsFromEnv's error, returned by Open and Devices.
	envErr error
}

// OptionsFromEnv returns options from SHLPT_VK_DEVICE, SHLPT_VK_VALIDATE,
// SHLPT_VK_PIPELINE_CACHE and SHLPT_VK_FORCE_STAGING. A command-line --device flag should override
// Device after this call. A variable with an invalid value (see EnvOptions)
// makes Open and Devices with these options fail with an error naming it.
func OptionsFromEnv() Options {
	o, err := EnvOptions()
	o.envErr = err
	return o
}

// instance is a VkInstance with its optional validation messenger.
type instance struct {
	vk       vk.Instance
	msg      *messenger
	validate bool
	// layers holds the header versions of the layers enabled on the
	// instance: optional structures newer than one of them are neither
	// queried nor enabled (see features.go).
	layers []uint32
}

const validationLayer = "VK_LAYER_KHRONOS_validation"

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func newInstance(validate bool) (*instance, error) {
	if err := loadVulkan(); err != nil {
		return nil, err
	}
	api := instanceVersion()
	if api < vk.MakeVersion(1, 1, 0) {
		return nil, fmt.Errorf("gpu: the Vulkan loader supports only Vulkan %s; 1.1 or newer is required: %w; %s",
			versionString(api), ErrNoDevice, installHint)
	}
	if api > vk.MakeVersion(1, 3, 0) {
		api = vk.MakeVersion(1, 3, 0)
	}
	var layers, exts []string
	syncValidation := false
	if validate {
		if !contains(instanceLayers(), validationLayer) {
			return nil, fmt.Errorf("gpu: validation was requested (%s=1) but %s is not installed; "+
				"install it with: sudo apt-get install vulkan-validationlayers", ValidateEnv, validationLayer)
		}
		layers = append(layers, validationLayer)
		avail := append(instanceExtensions(""), instanceExtensions(validationLayer)...)
		if !contains(avail, "VK_EXT_debug_utils") {
			return nil, fmt.Errorf("gpu: validation needs VK_EXT_debug_utils, which this loader lacks")
		}
		exts = append(exts, "VK_EXT_debug_utils")
		if contains(avail, "VK_EXT_validation_features") {
			exts = append(exts, "VK_EXT_validation_features")
			syncValidation = true
		}
	}
	inst, res := createInstance(api, layers, exts, syncValidation)
	if res == vk.ErrorIncompatibleDriver {
		return nil, fmt.Errorf("gpu: vkCreateInstance: no Vulkan driver is installed (VK_ERROR_INCOMPATIBLE_DRIVER): %w; %s",
			ErrNoDevice, installHint)
	}
	if res != vk.Success {
		return nil, vkError("vkCreateInstance", res)
	}
	in := &instance{vk: inst, validate: validate}
	for _, l := range layers {
		in.layers = append(in.layers, layerVersion(l))
	}
	if err := initInstanceFns(inst); err != nil {
		vk.DestroyInstance(inst, nil)
		return nil, err
	}
	if validate {
		m, err := newMessenger(inst)
		if err != nil {
			vk.DestroyInstance(inst, nil)
			return nil, err
		}
		in.msg = m
	}
	return in, nil
}

func (in *instance) destroy() {
	in.msg.destroy()
	vk.DestroyInstance(in.vk, nil)
}

// physicalDevices lists the instance's devices with their properties.
func (in *instance) physicalDevices() ([]vk.PhysicalDevice, []DeviceInfo, error) {
	var n uint32
	if res := vk.EnumeratePhysicalDevices(in.vk, &n, nil); res != vk.Success {
		return nil, nil, vkError("vkEnumeratePhysicalDevices", res)
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("gpu: the Vulkan loader found no device: %w; %s", ErrNoDevice, installHint)
	}
	pds := make([]vk.PhysicalDevice, n)
	if res := vk.EnumeratePhysicalDevices(in.vk, &n, pds); res != vk.Success && res != vk.Incomplete {
		return nil, nil, vkError("vkEnumeratePhysicalDevices", res)
	}
	pds = pds[:n]
	infos := make([]DeviceInfo, n)
	for i, pd := range pds {
		if err := describe(in, pd, i, &infos[i]); err != nil {
			return nil, nil, err
		}
	}
	return pds, infos, nil
}

// extSetFor says which optional structures the device understands.
func extSetFor(info *DeviceInfo) extSet {
	v := info.APIVersion
	v11, v12, v13 := v >= vk.MakeVersion(1, 1, 0), v >= vk.MakeVersion(1, 2, 0), v >= vk.MakeVersion(1, 3, 0)
	return extSet{
		api:          v,
		storage16:    v11 || info.hasExtension("VK_KHR_16bit_storage"),
		storage8:     v12 || info.hasExtension("VK_KHR_8bit_storage"),
		float16int8:  v12 || info.hasExtension("VK_KHR_shader_float16_int8"),
		bda:          v12 || info.hasExtension("VK_KHR_buffer_device_address"),
		subgroupSize: v13 || info.hasExtension("VK_EXT_subgroup_size_control"),
		driver:       v12 || info.hasExtension("VK_KHR_driver_properties"),
		maint3:       v11 || info.hasExtension("VK_KHR_maintenance3"),
		maint4:       v13 || info.hasExtension("VK_KHR_maintenance4"),
		coopmat:      info.hasExtension("VK_KHR_cooperative_matrix"),
	}
}

// describe fills info from Vulkan 1.0 queries (through vulkan-go) and the
// shim's Properties2/Features2 queries, leaving out the structures that a
// layer enabled on in does not know.
func describe(in *instance, pd vk.PhysicalDevice, index int, info *DeviceInfo) error {
	var p vk.PhysicalDeviceProperties
	vk.GetPhysicalDeviceProperties(pd, &p)
	p.Deref()
	p.Limits.Deref()
	lim := p.Limits
	*info = DeviceInfo{
		Index:                   index,
		Name:                    cString(p.DeviceName[:]),
		Type:                    DeviceType(p.DeviceType),
		VendorID:                p.VendorID,
		DeviceID:                p.DeviceID,
		APIVersion:              p.ApiVersion,
		DriverVersion:           p.DriverVersion,
		MaxSharedMemory:         lim.MaxComputeSharedMemorySize,
		MaxStorageBufferRange:   lim.MaxStorageBufferRange,
		MaxTexelBufferElements:  lim.MaxTexelBufferElements,
		MaxPushConstantsSize:    lim.MaxPushConstantsSize,
		MaxWorkgroupInvocations: lim.MaxComputeWorkGroupInvocations,
		MaxWorkgroupSize:        lim.MaxComputeWorkGroupSize,
		MaxWorkgroupCount:       lim.MaxComputeWorkGroupCount,
		MinStorageBufferAlign:   uint64(lim.MinStorageBufferOffsetAlignment),
		MinTexelBufferAlign:     uint64(lim.MinTexelBufferOffsetAlignment),
		NonCoherentAtomSize:     uint64(lim.NonCoherentAtomSize),
		TimestampPeriod:         lim.TimestampPeriod,
		ComputeQueueFamily:      -1,
	}
	p.Free()

	heaps, types, err := memoryProperties(pd)
	if err != nil {
		return err
	}
	info.Heaps, info.MemoryTypes = heaps, types
	// Prefer a compute family that supports timestamps.
	flags, ts := queueFamilies(pd)
	for i, f := range flags {
		if f&uint32(vk.QueueComputeBit) == 0 {
			continue
		}
		if info.ComputeQueueFamily < 0 || (info.TimestampValidBits == 0 && ts[i] > 0) {
			info.ComputeQueueFamily = i
			info.TimestampValidBits = ts[i]
		}
	}

	info.Extensions = deviceExtensions(in.vk, pd)
	es, skipped := restrictToLayers(extSetFor(info), in.layers)
	info.NotQueried = skipped
	if err := queryCaps(pd, es, info); err != nil {
		return err
	}
	info.Texel16 = uniformTexelFormat(pd, vk.FormatR16Uint) && uniformTexelFormat(pd, vk.FormatR16g16b16a16Uint)
	info.finish()
	return nil
}

// uniformTexelFormat reports whether buffers of format f can be read as
// uniform texel buffers on pd.
func uniformTexelFormat(pd vk.PhysicalDevice, f vk.Format) bool {
	var fp vk.FormatProperties
	vk.GetPhysicalDeviceFormatProperties(pd, f, &fp)
	fp.Deref()
	ok := fp.BufferFeatures&vk.FormatFeatureFlags(vk.FormatFeatureUniformTexelBufferBit) != 0
	fp.Free()
	return ok
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// choose picks a device: by index, by vendor ("vendor:0x10de", the first
// device of that PCI vendor id) or by name substring when sel is set, else
// by type preference. Devices without a compute queue are never chosen.
func choose(infos []DeviceInfo, sel string) (int, error) {
	sel = strings.TrimSpace(sel)
	if v, ok := strings.CutPrefix(sel, "vendor:"); ok {
		id, err := strconv.ParseUint(strings.TrimSpace(v), 0, 32)
		if err != nil {
			return -1, fmt.Errorf("gpu: device selection %q: the vendor id must be a number such as 0x10de", sel)
		}
		for i := range infos {
			if infos[i].VendorID == uint32(id) && infos[i].ComputeQueueFamily >= 0 {
				return i, nil
			}
		}
		return -1, fmt.Errorf("gpu: no device of vendor %#04x (%s)", id, deviceList(infos))
	}
	if sel != "" {
		if i, err := strconv.Atoi(sel); err == nil {
			if i < 0 || i >= len(infos) {
				return -1, fmt.Errorf("gpu: device index %d out of range (%s)", i, deviceList(infos))
			}
			if infos[i].ComputeQueueFamily < 0 {
				return -1, fmt.Errorf("gpu: device %d (%s) has no compute queue", i, infos[i].Name)
			}
			return i, nil
		}
		for i := range infos {
			if strings.Contains(strings.ToLower(infos[i].Name), strings.ToLower(sel)) && infos[i].ComputeQueueFamily >= 0 {
				return i, nil
			}
		}
		return -1, fmt.Errorf("gpu: no device matches %q (%s)", sel, deviceList(infos))
	}
	best := -1
	for i := range infos {
		if infos[i].ComputeQueueFamily < 0 {
			continue
		}
		if best < 0 || infos[i].Type.rank() > infos[best].Type.rank() {
			best = i
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("gpu: no device has a compute queue (%s): %w", deviceList(infos), ErrNoDevice)
	}
	return best, nil
}

func deviceList(infos []DeviceInfo) string {
	var b strings.Builder
	b.WriteString("devices:")
	for i := range infos {
		fmt.Fprintf(&b, " %d=%q", i, infos[i].Name)
	}
	return b.String()
}

// Devices lists every Vulkan device and marks the one Open(o) would choose.
func Devices(o Options) ([]DeviceInfo, error) {
	if o.envErr != nil {
		return nil, o.envErr
	}
	in, err := newInstance(o.Validate)
	if err != nil {
		return nil, err
	}
	defer in.destroy()
	_, infos, err := in.physicalDevices()
	if err != nil {
		return nil, err
	}
	for i := range infos {
		infos[i].StagedTransfers = stagesTransfers(&infos[i], o.ForceStaging)
	}
	if i, err := choose(infos, o.Device); err == nil {
		infos[i].Chosen = true
	} else {
		return infos, err
	}
	if in.validate {
		if err := checkValidation("listing devices"); err != nil {
			return infos, err
		}
	}
	return infos, nil
}

// Device is an open logical device with one compute queue, its memory,
// pipelines and command buffers. Its methods are safe for concurrent use,
// but recording is meant to happen from one goroutine at a time.
type Device struct {
	info DeviceInfo
	in   *instance
	pd   vk.PhysicalDevice
	dev  vk.Device
	fns  *shimFns
	q    vk.Queue

	mu     sync.Mutex // guards everything below and queue submission
	closed bool

	mem        *memory
	pipes      *pipelineCache
	cmdPool    vk.CommandPool
	freeCmds   []vk.CommandBuffer
	freeFences []vk.Fence
	inflight   []*submission
	stageUp    *Buffer // staging for uploads (see memory.upType), nil until used
	stageDown  *Buffer // staging for downloads; nil while unused, and when stageUp serves them
	programs   map[*Program]struct{}
	objects    ObjectCounts
	validate   bool
	features   feature // optional features enabled at creation
	bandwidth  float64 // measured copy bandwidth in bytes/s, 0 until measured

	bindLimit atomic.Int64 // MaxBindingBytes in force, 0 for the device's own
	deferred  error        // met where it could not be returned; the next wait returns it
}

// Open creates a device according to o.
func Open(o Options) (*Device, error) {
	if o.envErr != nil {
		return nil, o.envErr
	}
	in, err := newInstance(o.Validate)
	if err != nil {
		return nil, err
	}
	d, err := openOn(in, o)
	if err != nil {
		in.destroy()
		return nil, err
	}
	return d, nil
}

func openOn(in *instance, o Options) (*Device, error) {
	pds, infos, err := in.physicalDevices()
	if err != nil {
		return nil, err
	}
	idx, err := choose(infos, o.Device)
	if err != nil {
		return nil, err
	}
	infos[idx].Chosen = true
	info := infos[idx]
	pd := pds[idx]
	es, _ := restrictToLayers(extSetFor(&info), in.layers)
	needs, err := engineNeeds()
	if err != nil {
		return nil, err
	}
	req, enabled := requestFor(&info, needs)
	dev, fns, err := createDevice(pd, es, req)
	if err != nil {
		return nil, fmt.Errorf("%w (device %q)", err, info.Name)
	}
	d := &Device{info: info, in: in, pd: pd, dev: dev, fns: fns, validate: in.validate,
		features: enabled, programs: map[*Program]struct{}{}}
	var q vk.Queue // out-parameters must be plain locals (cgo pointer rules)
	vk.GetDeviceQueue(dev, uint32(info.ComputeQueueFamily), 0, &q)
	d.q = q
	if _, err := d.SetMaxBindingBytes(o.MaxBindingBytes); err != nil {
		d.destroy()
		return nil, err
	}
	if err := d.init(o); err != nil {
		d.destroy()
		return nil, err
	}
	if err := d.checkValidation("opening the device"); err != nil {
		d.destroy()
		return nil, err
	}
	return d, nil
}

func (d *Device) init(o Options) error {
	pci := vk.CommandPoolCreateInfo{
		SType:            vk.StructureTypeCommandPoolCreateInfo,
		Flags:            vk.CommandPoolCreateFlags(vk.CommandPoolCreateResetCommandBufferBit),
		QueueFamilyIndex: uint32(d.info.ComputeQueueFamily),
	}
	var pool vk.CommandPool
	res := vk.CreateCommandPool(d.dev, &pci, nil, &pool)
	pci.Free()
	if res != vk.Success {
		return vkError("vkCreateCommandPool", res)
	}
	d.cmdPool = pool
	m, err := newMemory(d, o.ForceStaging)
	if err != nil {
		return err
	}
	d.mem = m
	d.info.StagedTransfers = !m.hostVisible
	pc, err := newPipelineCache(d, o.PipelineCacheDir)
	if err != nil {
		return err
	}
	d.pipes = pc
	return nil
}

// Info describes the device. Its binding limits (MaxStorageBufferRange,
// MaxTexelBufferElements) are those in force: the device's own, or lower
// ones set with SetMaxBindingBytes; StagedTransfers says whether this
// device's transfers are staged.
func (d *Device) Info() DeviceInfo {
	info := d.info
	info.MaxStorageBufferRange, info.MaxTexelBufferElements = d.bindingLimits()
	return info
}

// minBindingLimit is the smallest binding limit SetMaxBindingBytes accepts:
// every kernel must still fit a row of a few hundred elements in a binding.
const minBindingLimit = 4096

// SetMaxBindingBytes caps the bytes one binding may hold at n: storage
// buffers at n bytes, texel buffers at n/4 texels. Kernels split their
// operands to fit, and the recorder refuses larger bindings, exactly as
// they do at the device's own limits; tests use it to run the splitting
// code on every device. A cap above the device's limits changes nothing;
// 0 restores them. It returns the previous cap. Change it only between
// recordings: a recording made under a larger cap is not checked again.
func (d *Device) SetMaxBindingBytes(n int64) (previous int64, err error) {
	if n < 0 || (n > 0 && n < minBindingLimit) {
		return d.bindLimit.Load(), fmt.Errorf("gpu: binding limit of %d bytes; it must be 0 (the device's) or at least %d", n, minBindingLimit)
	}
	n = n &^ 15 // whole texels
	return d.bindLimit.Swap(n), nil
}

// bindingLimits returns maxStorageBufferRange and maxTexelBufferElements in
// force.
func (d *Device) bindingLimits() (storage, texels uint32) {
	storage, texels = d.info.MaxStorageBufferRange, d.info.MaxTexelBufferElements
	if n := d.bindLimit.Load(); n > 0 {
		if n < int64(storage) {
			storage = uint32(n)
		}
		if n/4 < int64(texels) {
			texels = uint32(n / 4)
		}
	}
	return storage, texels
}

// String names the device.
func (d *Device) String() string { return d.info.Name }

// checkValidation turns pending validation messages into an error naming op.
func (d *Device) checkValidation(op string) error {
	if !d.validate {
		return nil
	}
	return checkValidation(op)
}

func checkValidation(op string) error {
	n, text := takeMessages()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("gpu: %s: %d validation message(s): %w:\n%s", op, n, ErrValidation, strings.TrimSpace(text))
}

// ValidationError returns (and clears) any validation messages that arrived
// outside an operation that could report them. Tests call it at the end.
func (d *Device) ValidationError() error { return d.checkValidation("pending") }

// Close waits for the queue, saves the pipeline cache and frees everything in
// reverse order of creation. It returns any validation message or error met.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	err := d.waitLocked()
	d.closed = true
	d.mu.Unlock()
	if e := d.pipes.save(); e != nil && err == nil {
		err = e
	}
	if e := d.destroy(); e != nil && err == nil {
		err = e
	}
	return err
}

// destroy releases every object; it tolerates a partially initialized device.
func (d *Device) destroy() error {
	if d.dev != nil {
		vk.DeviceWaitIdle(d.dev)
	}
	var err error
	for _, s := range d.inflight {
		err = errors.Join(err, d.recycle(s))
	}
	d.inflight = nil
	for p := range d.programs {
		if p.pool != nil {
			vk.DestroyQueryPool(d.dev, p.pool, nil)
			p.pool = nil
		}
		p.released = true
	}
	d.programs = nil
	if d.pipes != nil {
		d.pipes.destroy()
	}
	for _, st := range []*Buffer{d.stageUp, d.stageDown} {
		if st != nil {
			d.mem.destroyBlock(st.blk)
		}
	}
	d.stageUp, d.stageDown = nil, nil
	if d.mem != nil {
		d.mem.destroy()
	}
	for _, f := range d.freeFences {
		vk.DestroyFence(d.dev, f, nil)
	}
	d.freeFences = nil
	if d.cmdPool != nil {
		vk.DestroyCommandPool(d.dev, d.cmdPool, nil) // frees its command buffers
		d.cmdPool = nil
	}
	d.freeCmds = nil
	if d.dev != nil {
		vk.DestroyDevice(d.dev, nil)
		d.dev = nil
	}
	if d.fns != nil {
		freeDeviceFns(d.fns)
		d.fns = nil
	}
	if d.in != nil {
		err = errors.Join(err, d.checkValidation("closing the device"))
		d.in.destroy()
		d.in = nil
	}
	return err
}

var errClosed = errors.New("gpu: device is closed")

// ObjectCounts counts Vulkan objects the device created and still holds, for
// leak checks.
type ObjectCounts struct {
	CommandBuffers int
	Fences         int
	QueryPools     int
	DescriptorSets int
	Pipelines      int
	Blocks         int
}

// ObjectCounts returns the current object counts.
func (d *Device) ObjectCounts() ObjectCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.objects
	c.DescriptorSets = d.pipes.nsets
	c.Pipelines = len(d.pipes.pipes)
	c.Blocks = len(d.mem.retired)
	for a := range d.mem.arenas {
		c.Blocks += len(a.blocks)
	}
	return c
}
