package gpu

import (
	"errors"
	"fmt"

	vk "github.com/vulkan-go/vulkan"
)

// ErrNoDevice is returned (wrapped) when no Vulkan loader, driver or device
// is available. Its message says what to install.
var ErrNoDevice = errors.New("no Vulkan device")

// ErrValidation is returned (wrapped) when the Khronos validation layer
// reported a message during an operation.
var ErrValidation = errors.New("Vulkan validation")

// resultNames names the VkResult codes the engine can meet.
var resultNames = map[vk.Result]string{
	vk.Success:                   "VK_SUCCESS",
	vk.NotReady:                  "VK_NOT_READY",
	vk.Timeout:                   "VK_TIMEOUT",
	vk.Incomplete:                "VK_INCOMPLETE",
	vk.ErrorOutOfHostMemory:      "VK_ERROR_OUT_OF_HOST_MEMORY",
	vk.ErrorOutOfDeviceMemory:    "VK_ERROR_OUT_OF_DEVICE_MEMORY",
	vk.ErrorInitializationFailed: "VK_ERROR_INITIALIZATION_FAILED",
	vk.ErrorDeviceLost:           "VK_ERROR_DEVICE_LOST",
	vk.ErrorMemoryMapFailed:      "VK_ERROR_MEMORY_MAP_FAILED",
	vk.ErrorLayerNotPresent:      "VK_ERROR_LAYER_NOT_PRESENT",
	vk.ErrorExtensionNotPresent:  "VK_ERROR_EXTENSION_NOT_PRESENT",
	vk.ErrorFeatureNotPresent:    "VK_ERROR_FEATURE_NOT_PRESENT",
	vk.ErrorIncompatibleDriver:   "VK_ERROR_INCOMPATIBLE_DRIVER",
	vk.ErrorTooManyObjects:       "VK_ERROR_TOO_MANY_OBJECTS",
	vk.ErrorFormatNotSupported:   "VK_ERROR_FORMAT_NOT_SUPPORTED",
	vk.ErrorFragmentedPool:       "VK_ERROR_FRAGMENTED_POOL",
	vk.Result(-1000069000):       "VK_ERROR_OUT_OF_POOL_MEMORY",
	vk.Result(-1000072003):       "VK_ERROR_INVALID_EXTERNAL_HANDLE",
	vk.Result(-1000161000):       "VK_ERROR_FRAGMENTATION",
	vk.Result(-1000257000):       "VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS",
	vk.Result(-13):               "VK_ERROR_UNKNOWN",
}

// vkError wraps a failed Vulkan call: "vkCreateDevice: VK_ERROR_...".
func vkError(call string, r vk.Result) error {
	if r == vk.Success {
		return nil
	}
	name, ok := resultNames[r]
	if !ok {
		name = fmt.Sprintf("VkResult(%d)", int32(r))
	}
	return fmt.Errorf("gpu: %s: %s", call, name)
}
