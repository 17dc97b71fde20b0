package gpu

import (
	vk "github.com/vulkan-go/vulkan"
)

// TriggerValidationErrorForTest makes an invalid Vulkan call (a texel view at
// an unaligned offset) and returns what the validation plumbing reports.
func (d *Device) TriggerValidationErrorForTest() error {
	b, err := d.Alloc(4096)
	if err != nil {
		return err
	}
	defer b.Free()
	d.mu.Lock()
	defer d.mu.Unlock()
	ci := vk.BufferViewCreateInfo{SType: vk.StructureTypeBufferViewCreateInfo, Buffer: b.blk.buf,
		Format: vk.FormatR32g32b32a32Sfloat, Offset: 1, Range: 16}
	var v vk.BufferView
	res := vk.CreateBufferView(d.dev, &ci, nil, &v)
	ci.Free()
	if res == vk.Success {
		vk.DestroyBufferView(d.dev, v, nil)
	}
	return d.checkValidation("test")
}

// SetFaultForTest makes the engine's step fail with the error f returns
// for it ("fence": getting a fence for a submission; "reset": resetting a
// command buffer) until restore is called.
func SetFaultForTest(f func(step string) error) (restore func()) {
	faultHook = f
	return func() { faultHook = nil }
}

// PipelineCachePathForTest is the pipeline cache file of device info in dir.
func PipelineCachePathForTest(dir string, info DeviceInfo) string {
	return pipelineCachePath(dir, &info)
}
