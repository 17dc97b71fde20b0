package gpu

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	vk "github.com/vulkan-go/vulkan"
)

// spirvWithCaps is the header of a SPIR-V module followed by one
// OpCapability per entry of caps: enough for needsOf.
func spirvWithCaps(caps ...uint32) []byte {
	words := []uint32{0x07230203, 0x00010300, 0, 100, 0}
	for _, c := range caps {
		words = append(words, 2<<16|opCapability, c)
	}
	b := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

func TestNeedsOf(t *testing.T) {
	n, err := needsOf(spirvWithCaps(capShader, capSampledBuffer, capGroupNonUniform, capGroupShuffle))
	if err != nil || n.features != 0 || n.subgroup != SubgroupBasic|SubgroupShuffle {
		t.Errorf("core and subgroup capabilities: %+v, %v", n, err)
	}
	n, err = needsOf(spirvWithCaps(capShader, capFloat16, capStorageBuffer16Bit))
	if err != nil || n.features != featFloat16|featStorage16 {
		t.Errorf("fp16 capabilities: %+v, %v", n, err)
	}
	for _, c := range []uint32{capCooperativeMatrixNV, capCooperativeMatrixKHR} {
		if _, err := needsOf(spirvWithCaps(capShader, c)); err == nil || !strings.Contains(err.Error(), "cooperative matrices") {
			t.Errorf("capability %d: %v", c, err)
		}
	}
	if _, err := needsOf(spirvWithCaps(capShader, 4442)); err == nil || !strings.Contains(err.Error(), "capability 4442") {
		t.Errorf("unknown capability: %v", err)
	}
	if _, err := needsOf([]byte{1, 2, 3, 4}); err == nil {
		t.Errorf("4 bytes of SPIR-V accepted")
	}
}

// TestEngineShadersKnown: every capability of every embedded shader is one
// the engine knows how to provide (a new one must be added to needsOf and,
// if it takes a feature, to requestFor), and today they need no optional
// feature at all.
func TestEngineShadersKnown(t *testing.T) {
	f, err := engineNeeds()
	if err != nil {
		t.Fatal(err)
	}
	if f != 0 {
		t.Logf("the shaders need %s", f)
	}
}

// TestRequestEnablesOnlyWhatShadersNeed: a device that offers cooperative
// matrices, fp16 arithmetic and 16-bit storage gets none of them when no
// shader needs them (Debian 12's validation layer, 1.3.239, rejects the
// cooperative-matrix structure outright), and only what is needed
// otherwise, with the extension that provides it on a Vulkan 1.1 device.
func TestRequestEnablesOnlyWhatShadersNeed(t *testing.T) {
	info := &DeviceInfo{APIVersion: vk.MakeVersion(1, 3, 277), ComputeQueueFamily: 2, CooperativeMatrix: true,
		Float16: true, Int8: true, StorageBuffer16Bit: true, StorageBuffer8Bit: true, SubgroupSizeControl: true,
		Extensions: []string{"VK_KHR_cooperative_matrix", "VK_NV_cooperative_matrix"}}
	req, on := requestFor(info, 0)
	if on != 0 || req.storage16 || req.float16 || req.int8 || req.storage8 || len(req.extensions) != 0 || req.queueFamily != 2 {
		t.Errorf("nothing needed: request %+v, enabled %s", req, on)
	}
	req, on = requestFor(info, featFloat16)
	if on != featFloat16 || !req.float16 || req.int8 || req.storage16 || len(req.extensions) != 0 {
		t.Errorf("fp16 needed: request %+v, enabled %s", req, on)
	}
	old := &DeviceInfo{APIVersion: vk.MakeVersion(1, 1, 100), Float16: true}
	req, on = requestFor(old, featFloat16|featStorage8)
	if on != featFloat16 || !slices.Equal(req.extensions, []string{"VK_KHR_shader_float16_int8"}) {
		t.Errorf("Vulkan 1.1 device without 8-bit storage: request %+v, enabled %s", req, on)
	}
}

// TestLayersGateStructures: with Debian 12's validation layer enabled, the
// cooperative-matrix structures are neither queried nor chained; with a
// layer that knows them, or none, they are.
func TestLayersGateStructures(t *testing.T) {
	all := extSet{api: vk.MakeVersion(1, 3, 277), storage16: true, storage8: true, float16int8: true, bda: true,
		subgroupSize: true, driver: true, maint3: true, maint4: true, coopmat: true}
	e, skipped := restrictToLayers(all, []uint32{vk.MakeVersion(1, 3, 239)})
	if e.coopmat || !slices.Equal(skipped, []string{"VK_KHR_cooperative_matrix"}) {
		t.Errorf("layer 1.3.239: %+v, skipped %v", e, skipped)
	}
	if want := all; true {
		want.coopmat = false
		if e != want {
			t.Errorf("layer 1.3.239 turned off more than cooperative matrices: %+v", e)
		}
	}
	for _, layers := range [][]uint32{nil, {vk.MakeVersion(1, 3, 268)}} {
		if e, skipped := restrictToLayers(all, layers); e != all || len(skipped) != 0 {
			t.Errorf("layers %v: %+v, skipped %v", layers, e, skipped)
		}
	}
	e, _ = restrictToLayers(all, []uint32{vk.MakeVersion(1, 2, 198)})
	if e.subgroupSize || e.maint4 || e.coopmat || !e.driver || !e.storage8 {
		t.Errorf("layer 1.2.198: %+v", e)
	}
}

func TestChooseByVendor(t *testing.T) {
	infos := []DeviceInfo{
		{Name: "llvmpipe", Type: TypeCPU, VendorID: 0x10005},
		{Name: "NVIDIA H100", Type: TypeDiscrete, VendorID: 0x10de, ComputeQueueFamily: 0},
	}
	infos[0].ComputeQueueFamily = 0
	if i, err := choose(infos, "vendor:0x10de"); err != nil || i != 1 {
		t.Errorf("vendor:0x10de: %d, %v", i, err)
	}
	if i, err := choose(infos, "vendor:65541"); err != nil || i != 0 {
		t.Errorf("vendor:65541: %d, %v", i, err)
	}
	if _, err := choose(infos, "vendor:0x1002"); err == nil || !strings.Contains(err.Error(), "no device of vendor 0x1002") {
		t.Errorf("absent vendor: %v", err)
	}
	if _, err := choose(infos, "vendor:nvidia"); err == nil || !strings.Contains(err.Error(), "vendor id must be a number") {
		t.Errorf("bad vendor: %v", err)
	}
}
