package gpu

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	vk "github.com/vulkan-go/vulkan"

	"github.com/shlpt-vk/shlpt-vk/shaders"
)

// Optional device features are enabled only when a shader needs them, and
// only when both the driver and every layer the instance enabled know the
// structure that enables them: a validation layer older than a structure
// reports it as unknown (VUID-VkDeviceCreateInfo-pNext-pNext), which under
// SHLPT_VK_VALIDATE=1 fails every operation. What a shader needs is read
// from the OpCapability instructions of its SPIR-V.

// feature is an optional device feature a shader can need.
type feature uint32

const (
	featStorage16 feature = 1 << iota // storageBuffer16BitAccess
	featStorage8                      // storageBuffer8BitAccess
	featFloat16                       // shaderFloat16
	featInt8                          // shaderInt8
)

var featureNames = []string{"storageBuffer16BitAccess", "storageBuffer8BitAccess", "shaderFloat16", "shaderInt8"}

func (f feature) String() string {
	var names []string
	for i, n := range featureNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// shaderNeeds is what one shader's capabilities ask of the device.
type shaderNeeds struct {
	features feature
	subgroup SubgroupOps // subgroup operations used in compute
}

// SPIR-V capabilities (the unified1 grammar's numbers).
const (
	capShader                 = 1
	capFloat16                = 9
	capInt8                   = 39
	capSampledBuffer          = 46
	capImageBuffer            = 47
	capImageQuery             = 50
	capGroupNonUniform        = 61
	capGroupVote              = 62
	capGroupArithmetic        = 63
	capGroupBallot            = 64
	capGroupShuffle           = 65
	capGroupShuffleRelative   = 66
	capGroupClustered         = 67
	capGroupQuad              = 68
	capStorageBuffer16Bit     = 4433
	capStorageBuffer8Bit      = 4448
	capCooperativeMatrixNV    = 5357
	capCooperativeMatrixKHR   = 6022
	opCapability              = 17
	capStorageImageWriteNoFmt = 56
)

// needsOf reads the OpCapability instructions of a SPIR-V module. A
// capability the engine does not know how to provide is an error naming
// it: creating the pipeline anyway would be undefined behaviour.
func needsOf(code []byte) (shaderNeeds, error) {
	var n shaderNeeds
	if len(code) < 20 || len(code)%4 != 0 {
		return n, fmt.Errorf("SPIR-V of %d bytes", len(code))
	}
	word := func(i int) uint32 { return binary.LittleEndian.Uint32(code[4*i:]) }
	if word(0) != 0x07230203 {
		return n, fmt.Errorf("not SPIR-V (magic %#x)", word(0))
	}
	for i := 5; i < len(code)/4; {
		size := int(word(i) >> 16)
		if size == 0 || i+size > len(code)/4 {
			return n, fmt.Errorf("malformed SPIR-V instruction at word %d", i)
		}
		if op := word(i) & 0xffff; op == opCapability && size >= 2 {
			switch c := word(i + 1); c {
			case capShader, capSampledBuffer, capImageBuffer, capImageQuery, capStorageImageWriteNoFmt:
				// Vulkan 1.0 core (shaderStorageImageWriteWithoutFormat
				// aside, which storage texel buffers with a declared
				// format never need).
			case capGroupNonUniform:
				n.subgroup |= SubgroupBasic
			case capGroupVote:
				n.subgroup |= SubgroupVote
			case capGroupArithmetic:
				n.subgroup |= SubgroupArithmetic
			case capGroupBallot:
				n.subgroup |= SubgroupBallot
			case capGroupShuffle:
				n.subgroup |= SubgroupShuffle
			case capGroupShuffleRelative:
				n.subgroup |= SubgroupShuffleRelative
			case capGroupClustered:
				n.subgroup |= SubgroupClustered
			case capGroupQuad:
				n.subgroup |= SubgroupQuad
			case capStorageBuffer16Bit:
				n.features |= featStorage16
			case capStorageBuffer8Bit:
				n.features |= featStorage8
			case capFloat16:
				n.features |= featFloat16
			case capInt8:
				n.features |= featInt8
			case capCooperativeMatrixNV, capCooperativeMatrixKHR:
				return n, fmt.Errorf("the shader uses cooperative matrices (SPIR-V capability %d), which this engine does not enable", c)
			default:
				return n, fmt.Errorf("the shader uses SPIR-V capability %d, which this engine does not know how to enable", c)
			}
		}
		i += size
	}
	return n, nil
}

// engineNeeds is the union of what the engine's shaders (package shaders)
// need: the features Open enables.
func engineNeeds() (feature, error) {
	all, err := shaders.All()
	if err != nil {
		return 0, fmt.Errorf("gpu: reading the embedded shaders: %w", err)
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	var f feature
	for _, name := range names {
		n, err := needsOf(all[name])
		if err != nil {
			return 0, fmt.Errorf("gpu: shader %s: %v", name, err)
		}
		f |= n.features
	}
	return f, nil
}

// A layer validates the structures of its own Vulkan header: a structure
// newer than the layer is unknown to it. These are the header versions
// that introduced the optional structures the engine chains (for the ones
// promoted to core, the core version, which is where every layer of that
// version knows them).
var structSince = map[string]uint32{
	"VkPhysicalDevice16BitStorageFeatures":         vk.MakeVersion(1, 1, 0),
	"VkPhysicalDeviceMaintenance3Properties":       vk.MakeVersion(1, 1, 0),
	"VkPhysicalDevice8BitStorageFeatures":          vk.MakeVersion(1, 2, 0),
	"VkPhysicalDeviceShaderFloat16Int8Features":    vk.MakeVersion(1, 2, 0),
	"VkPhysicalDeviceBufferDeviceAddressFeatures":  vk.MakeVersion(1, 2, 0),
	"VkPhysicalDeviceDriverProperties":             vk.MakeVersion(1, 2, 0),
	"VkPhysicalDeviceSubgroupSizeControlFeatures":  vk.MakeVersion(1, 3, 0),
	"VkPhysicalDeviceMaintenance4Properties":       vk.MakeVersion(1, 3, 0),
	"VkPhysicalDeviceCooperativeMatrixFeaturesKHR": vk.MakeVersion(1, 3, 255),
}

// layersKnow reports whether every enabled layer (their header versions in
// layers) knows structure s. With no layer enabled, only the driver
// matters.
func layersKnow(layers []uint32, s string) bool {
	since, ok := structSince[s]
	if !ok {
		return false
	}
	for _, v := range layers {
		if v < since {
			return false
		}
	}
	return true
}

// restrictToLayers turns off the optional structures of e that an enabled
// layer does not know, and returns the extensions whose properties were
// therefore not queried.
func restrictToLayers(e extSet, layers []uint32) (extSet, []string) {
	var skipped []string
	off := func(on *bool, s, ext string) {
		if *on && !layersKnow(layers, s) {
			*on = false
			if ext != "" {
				skipped = append(skipped, ext)
			}
		}
	}
	off(&e.storage16, "VkPhysicalDevice16BitStorageFeatures", "VK_KHR_16bit_storage")
	off(&e.storage8, "VkPhysicalDevice8BitStorageFeatures", "VK_KHR_8bit_storage")
	off(&e.float16int8, "VkPhysicalDeviceShaderFloat16Int8Features", "VK_KHR_shader_float16_int8")
	off(&e.bda, "VkPhysicalDeviceBufferDeviceAddressFeatures", "VK_KHR_buffer_device_address")
	off(&e.subgroupSize, "VkPhysicalDeviceSubgroupSizeControlFeatures", "VK_EXT_subgroup_size_control")
	off(&e.driver, "VkPhysicalDeviceDriverProperties", "VK_KHR_driver_properties")
	off(&e.maint3, "VkPhysicalDeviceMaintenance3Properties", "VK_KHR_maintenance3")
	off(&e.maint4, "VkPhysicalDeviceMaintenance4Properties", "VK_KHR_maintenance4")
	off(&e.coopmat, "VkPhysicalDeviceCooperativeMatrixFeaturesKHR", "VK_KHR_cooperative_matrix")
	return e, skipped
}

// requestFor is the device request for info: the features in needs that
// the device supports (the queries in info already left out what the
// layers do not know), and the extensions that provide them on devices
// older than the core version that has them. A needed feature the device
// cannot provide is left off; pipelines that need it fail with an error
// naming it (see checkNeeds).
func requestFor(info *DeviceInfo, needs feature) (deviceRequest, feature) {
	req := deviceRequest{queueFamily: uint32(info.ComputeQueueFamily)}
	var on feature
	if needs&featStorage16 != 0 && info.StorageBuffer16Bit {
		req.storage16 = true
		on |= featStorage16
		if info.APIVersion < vk.MakeVersion(1, 1, 0) {
			req.extensions = append(req.extensions, "VK_KHR_16bit_storage")
		}
	}
	if needs&featStorage8 != 0 && info.StorageBuffer8Bit {
		req.storage8 = true
		on |= featStorage8
		if info.APIVersion < vk.MakeVersion(1, 2, 0) {
			req.extensions = append(req.extensions, "VK_KHR_8bit_storage")
		}
	}
	f16 := needs&featFloat16 != 0 && info.Float16
	i8 := needs&featInt8 != 0 && info.Int8
	if f16 || i8 {
		req.float16, req.int8 = f16, i8
		if f16 {
			on |= featFloat16
		}
		if i8 {
			on |= featInt8
		}
		if info.APIVersion < vk.MakeVersion(1, 2, 0) {
			req.extensions = append(req.extensions, "VK_KHR_shader_float16_int8")
		}
	}
	return req, on
}

// checkNeeds refuses a kernel whose shader needs what the device was not
// opened with.
func (d *Device) checkNeeds(k *Kernel) error {
	n, err := needsOf(k.SPIRV)
	if err != nil {
		return fmt.Errorf("gpu: kernel %s: %v", k.Name, err)
	}
	if missing := n.features &^ d.features; missing != 0 {
		return fmt.Errorf("gpu: kernel %s needs %s, which %s was opened without (the device lacks it, or a validation layer too old to know it is active)",
			k.Name, missing, d.info.Name)
	}
	if n.subgroup != 0 && !d.info.SubgroupInCompute {
		return fmt.Errorf("gpu: kernel %s uses subgroup operations, which %s does not support in compute shaders", k.Name, d.info.Name)
	}
	if missing := n.subgroup &^ d.info.SubgroupOps; missing != 0 {
		return fmt.Errorf("gpu: kernel %s uses subgroup operations %s, which %s does not support",
			k.Name, strings.Join(missing.Names(), " "), d.info.Name)
	}
	return nil
}
