package gpu

// All of the engine's own cgo is in this file and vkshim.c; vulkan-go is used
// for object creation, the shim for what vulkan-go lacks (see vkshim.h).

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "vkshim.h"
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// handle converts any vulkan-go handle (a C pointer type) for the shim.
func handle(h unsafe.Pointer) C.shim_handle { return C.shim_handle(h) }

// LoaderEnv overrides the file name of the Vulkan loader library.
const LoaderEnv = "SHLPT_VK_LOADER"

var (
	loadOnce sync.Once
	loadErr  error
)

// installHint says what to install when no Vulkan device is usable.
const installHint = "install the Vulkan loader and a driver, for example on Debian/Ubuntu: " +
	"sudo apt-get install libvulkan1 mesa-vulkan-drivers (lavapipe, a CPU driver), " +
	"or your GPU vendor's driver"

// loadVulkan opens libvulkan.so.1 (the name the runtime package installs;
// vulkan-go's default loader asks for libvulkan.so, which only the -dev
// package provides) and initializes vulkan-go's global function pointers.
func loadVulkan() error {
	loadOnce.Do(func() {
		name := os.Getenv(LoaderEnv)
		if name == "" {
			name = "libvulkan.so.1"
		}
		cname := C.CString(name)
		defer C.free(unsafe.Pointer(cname))
		var msg [512]C.char
		p := C.shim_load(cname, &msg[0], C.size_t(len(msg)))
		if p == nil {
			loadErr = fmt.Errorf("gpu: cannot load the Vulkan loader %s (%s): %w; %s",
				name, C.GoString(&msg[0]), ErrNoDevice, installHint)
			return
		}
		vk.SetGetInstanceProcAddr(p)
		if err := vk.Init(); err != nil {
			loadErr = fmt.Errorf("gpu: initializing Vulkan: %v: %w; %s", err, ErrNoDevice, installHint)
		}
	})
	return loadErr
}

// instanceVersion is the loader's highest supported instance API version.
func instanceVersion() uint32 { return uint32(C.shim_instance_version()) }

func initInstanceFns(inst vk.Instance) error {
	if err := vk.InitInstance(inst); err != nil {
		return fmt.Errorf("gpu: loading instance functions: %v", err)
	}
	if C.shim_init_instance(handle(unsafe.Pointer(inst))) != 0 {
		return fmt.Errorf("gpu: the Vulkan loader lacks vkGetPhysicalDeviceProperties2 (Vulkan 1.1 is required)")
	}
	return nil
}

// nameList turns a newline-separated C list into a slice.
func nameList(buf []C.char, n C.int) []string {
	if n <= 0 {
		return nil
	}
	s := strings.TrimSpace(C.GoString(&buf[0]))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func instanceLayers() []string {
	buf := make([]C.char, 1<<16)
	return nameList(buf, C.shim_instance_layers(&buf[0], C.size_t(len(buf))))
}

// layerVersion is the Vulkan header version the named layer was built
// with (its specVersion), 0 when it is not installed.
func layerVersion(name string) uint32 {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	return uint32(C.shim_layer_version(cn))
}

// instanceExtensions lists the extensions of the loader and implicit layers,
// or of one layer when layer is not empty.
func instanceExtensions(layer string) []string {
	buf := make([]C.char, 1<<16)
	var cl *C.char
	if layer != "" {
		cl = C.CString(layer)
		defer C.free(unsafe.Pointer(cl))
	}
	return nameList(buf, C.shim_instance_extensions(cl, &buf[0], C.size_t(len(buf))))
}

func deviceExtensions(inst vk.Instance, pd vk.PhysicalDevice) []string {
	buf := make([]C.char, 1<<17)
	return nameList(buf, C.shim_device_extensions(handle(unsafe.Pointer(inst)), handle(unsafe.Pointer(pd)), &buf[0], C.size_t(len(buf))))
}

// extSet says which optional query structures a device understands.
type extSet struct {
	api                                                         uint32
	storage16, storage8, float16int8, bda, subgroupSize, driver bool
	maint3, maint4, coopmat                                     bool
}

func (e extSet) c() C.shim_exts {
	b := func(v bool) C.uint32_t {
		if v {
			return 1
		}
		return 0
	}
	return C.shim_exts{
		api_version:       C.uint32_t(e.api),
		ext_16bit_storage: b(e.storage16),
		ext_8bit_storage:  b(e.storage8),
		ext_float16_int8:  b(e.float16int8),
		ext_bda:           b(e.bda),
		ext_subgroup_size: b(e.subgroupSize),
		ext_driver_props:  b(e.driver),
		ext_maintenance3:  b(e.maint3),
		ext_maintenance4:  b(e.maint4),
		ext_coopmat:       b(e.coopmat),
	}
}

// queryCaps fills the parts of info that need Properties2/Features2.
func queryCaps(pd vk.PhysicalDevice, e extSet, info *DeviceInfo) error {
	ce := e.c()
	caps := (*C.shim_caps)(C.calloc(1, C.size_t(unsafe.Sizeof(C.shim_caps{}))))
	if caps == nil {
		return fmt.Errorf("gpu: out of host memory")
	}
	defer C.free(unsafe.Pointer(caps))
	if C.shim_query_caps(handle(unsafe.Pointer(pd)), &ce, caps) != 0 {
		return fmt.Errorf("gpu: %s supports only Vulkan %s; 1.1 is required", info.Name, versionString(e.api))
	}
	info.SubgroupSize = uint32(caps.subgroup_size)
	info.MinSubgroupSize = uint32(caps.min_subgroup_size)
	info.MaxSubgroupSize = uint32(caps.max_subgroup_size)
	info.SubgroupOps = SubgroupOps(caps.subgroup_ops)
	info.SubgroupInCompute = caps.subgroup_stages&0x20 != 0
	info.SubgroupSizeControl = caps.subgroup_size_control != 0
	info.DriverName = C.GoString(&caps.driver_name[0])
	info.DriverInfo = C.GoString(&caps.driver_info[0])
	info.MaxMemoryAllocationSize = uint64(caps.max_memory_allocation_size)
	info.MaxBufferSize = uint64(caps.max_buffer_size)
	info.StorageBuffer16Bit = caps.storage_buffer_16bit != 0
	info.StorageBuffer8Bit = caps.storage_buffer_8bit != 0
	info.Float16 = caps.shader_float16 != 0
	info.Int8 = caps.shader_int8 != 0
	info.BufferDeviceAddress = caps.buffer_device_address != 0
	info.CooperativeMatrix = caps.cooperative_matrix != 0
	for i := 0; i < int(caps.n_coopmat); i++ {
		c := caps.coopmat[i]
		info.CooperativeMatrixShapes = append(info.CooperativeMatrixShapes, CoopMatShape{
			M: uint32(c.m), N: uint32(c.n), K: uint32(c.k),
			A: ComponentType(c.a_type), B: ComponentType(c.b_type),
			C: ComponentType(c.c_type), Result: ComponentType(c.result_type),
			Saturating: c.saturating != 0, Scope: uint32(c.scope),
		})
	}
	return nil
}

// deviceRequest lists the features and extensions to enable on a device.
type deviceRequest struct {
	queueFamily                        uint32
	storage16, float16, int8, storage8 bool
	extensions                         []string
}

// createDevice creates the logical device with a pNext feature chain built in
// C memory, and loads its function table for the recorder.
func createDevice(pd vk.PhysicalDevice, e extSet, r deviceRequest) (vk.Device, *shimFns, error) {
	ce := e.c()
	req := (*C.shim_device_request)(C.calloc(1, C.size_t(unsafe.Sizeof(C.shim_device_request{}))))
	if req == nil {
		return nil, nil, fmt.Errorf("gpu: out of host memory")
	}
	defer C.free(unsafe.Pointer(req))
	b := func(v bool) C.uint32_t {
		if v {
			return 1
		}
		return 0
	}
	req.queue_family = C.uint32_t(r.queueFamily)
	req.storage_buffer_16bit = b(r.storage16)
	req.shader_float16 = b(r.float16)
	req.shader_int8 = b(r.int8)
	req.storage_buffer_8bit = b(r.storage8)
	if len(r.extensions) > len(req.extensions) {
		return nil, nil, fmt.Errorf("gpu: too many device extensions (%d)", len(r.extensions))
	}
	for i, name := range r.extensions {
		cs := C.CString(name)
		defer C.free(unsafe.Pointer(cs))
		req.extensions[i] = cs
	}
	req.n_extensions = C.uint32_t(len(r.extensions))
	var dev C.shim_handle
	if res := vk.Result(C.shim_create_device(handle(unsafe.Pointer(pd)), &ce, req, &dev)); res != vk.Success {
		return nil, nil, vkError("vkCreateDevice", res)
	}
	fns := C.shim_init_device(dev)
	if fns == nil {
		return nil, nil, fmt.Errorf("gpu: vkGetDeviceProcAddr failed for core commands")
	}
	return vk.Device(unsafe.Pointer(dev)), fns, nil
}

func freeDeviceFns(f *shimFns) { C.shim_free_device(f) }

// messenger collects validation messages in C memory (the layer's strings
// are only valid during its callback, so the shim copies them).
type messenger struct {
	inst vk.Instance
	h    C.shim_handle
}

func newMessenger(inst vk.Instance) (*messenger, error) {
	var h C.shim_handle
	if res := vk.Result(C.shim_create_messenger(handle(unsafe.Pointer(inst)), &h)); res != vk.Success {
		return nil, vkError("vkCreateDebugUtilsMessengerEXT", res)
	}
	return &messenger{inst: inst, h: h}, nil
}

func (m *messenger) destroy() {
	if m != nil && m.h != nil {
		C.shim_destroy_messenger(handle(unsafe.Pointer(m.inst)), m.h)
		m.h = nil
	}
}

// takeMessages returns and clears the pending validation messages.
func takeMessages() (int, string) {
	buf := make([]C.char, 1<<16)
	n := C.shim_take_messages(&buf[0], C.size_t(len(buf)))
	return int(n), C.GoString(&buf[0])
}

// cmd is one command for the batch recorder (see shim_cmd).
type cmd = C.shim_cmd

const (
	cmdDispatch     = C.SHIM_CMD_DISPATCH
	cmdBarrier      = C.SHIM_CMD_BARRIER
	cmdFill         = C.SHIM_CMD_FILL
	cmdCopy         = C.SHIM_CMD_COPY
	cmdTimestamp    = C.SHIM_CMD_TIMESTAMP
	cmdResetQueries = C.SHIM_CMD_RESET_QUERIES
	cmdHostBarrier  = C.SHIM_CMD_HOST_BARRIER
	maxPushWords    = C.SHIM_MAX_PUSH_WORDS
)

// record replays cmds into a begun command buffer in one cgo call. cmds
// holds no Go pointers, so passing it is within cgo's rules.
func record(f *shimFns, cb vk.CommandBuffer, cmds []cmd) {
	if len(cmds) == 0 {
		return
	}
	C.shim_record(f, handle(unsafe.Pointer(cb)), &cmds[0], C.int(len(cmds)))
}

func beginCommandBuffer(f *shimFns, cb vk.CommandBuffer, oneTime bool) error {
	ot := C.uint32_t(0)
	if oneTime {
		ot = 1
	}
	return vkError("vkBeginCommandBuffer", vk.Result(C.shim_begin(f, handle(unsafe.Pointer(cb)), ot)))
}

func endCommandBuffer(f *shimFns, cb vk.CommandBuffer) error {
	return vkError("vkEndCommandBuffer", vk.Result(C.shim_end(f, handle(unsafe.Pointer(cb)))))
}

func resetCommandBuffer(f *shimFns, cb vk.CommandBuffer) error {
	if err := fault("reset"); err != nil {
		return err
	}
	return vkError("vkResetCommandBuffer", vk.Result(C.shim_reset_cmdbuf(f, handle(unsafe.Pointer(cb)))))
}

func submit(f *shimFns, q vk.Queue, cb vk.CommandBuffer, fence vk.Fence) error {
	return vkError("vkQueueSubmit", vk.Result(C.shim_submit(f, handle(unsafe.Pointer(q)), handle(unsafe.Pointer(cb)), handle(unsafe.Pointer(fence)))))
}

// waitFence waits for and resets a fence.
func waitFence(f *shimFns, d vk.Device, fence vk.Fence, timeoutNs uint64) error {
	return vkError("vkWaitForFences", vk.Result(C.shim_wait_fence(f, handle(unsafe.Pointer(d)), handle(unsafe.Pointer(fence)), C.uint64_t(timeoutNs))))
}

// fenceSignaled reports whether a fence is signaled, without waiting.
func fenceSignaled(f *shimFns, d vk.Device, fence vk.Fence) (bool, error) {
	r := vk.Result(C.shim_fence_status(f, handle(unsafe.Pointer(d)), handle(unsafe.Pointer(fence))))
	switch r {
	case vk.Success:
		return true, nil
	case vk.NotReady:
		return false, nil
	}
	return false, vkError("vkGetFenceStatus", r)
}

// shimFns is the per-device function table of the shim.
type shimFns = C.shim_fns

func cU32(v uint32) C.uint32_t        { return C.uint32_t(v) }
func cUint64(v int64) C.uint64_t      { return C.uint64_t(v) }
func ptrOf(v []uint64) unsafe.Pointer { return unsafe.Pointer(&v[0]) }

// cStrings copies names into C memory; free releases them.
func cStrings(names []string) (**C.char, func()) {
	if len(names) == 0 {
		return nil, func() {}
	}
	arr := (*[64]*C.char)(C.calloc(64, C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	for i, n := range names {
		arr[i] = C.CString(n)
	}
	return &arr[0], func() {
		for i := range names {
			C.free(unsafe.Pointer(arr[i]))
		}
		C.free(unsafe.Pointer(arr))
	}
}

func createInstance(api uint32, layers, exts []string, syncValidation bool) (vk.Instance, vk.Result) {
	cl, freeL := cStrings(layers)
	defer freeL()
	ce, freeE := cStrings(exts)
	defer freeE()
	sv := C.int(0)
	if syncValidation {
		sv = 1
	}
	var h C.shim_handle
	r := vk.Result(C.shim_create_instance(C.uint32_t(api), cl, C.uint32_t(len(layers)), ce, C.uint32_t(len(exts)), sv, &h))
	return vk.Instance(unsafe.Pointer(h)), r
}

func memoryProperties(pd vk.PhysicalDevice) (heaps []MemoryHeap, types []MemoryType, err error) {
	var m C.shim_memory
	if C.shim_memory_properties(handle(unsafe.Pointer(pd)), &m) != 0 {
		return nil, nil, fmt.Errorf("gpu: vkGetPhysicalDeviceMemoryProperties unavailable")
	}
	for i := 0; i < int(m.n_heaps); i++ {
		heaps = append(heaps, MemoryHeap{Size: uint64(m.heap_size[i]), DeviceLocal: m.heap_flags[i]&1 != 0})
	}
	for i := 0; i < int(m.n_types); i++ {
		f := uint32(m.type_flags[i])
		types = append(types, MemoryType{Heap: int(m.type_heap[i]), DeviceLocal: f&1 != 0,
			HostVisible: f&2 != 0, HostCoherent: f&4 != 0, HostCached: f&8 != 0})
	}
	return heaps, types, nil
}

// queueFamilies returns each family's VkQueueFlags and timestamp bits.
func queueFamilies(pd vk.PhysicalDevice) (flags, tsBits []uint32) {
	var f, t [64]C.uint32_t
	n := int(C.shim_queue_families(handle(unsafe.Pointer(pd)), &f[0], &t[0], 64))
	for i := 0; i < n; i++ {
		flags = append(flags, uint32(f[i]))
		tsBits = append(tsBits, uint32(t[i]))
	}
	return flags, tsBits
}

func createLayouts(d vk.Device, kinds []BindingKind, pushBytes int) (vk.DescriptorSetLayout, vk.PipelineLayout, vk.Result) {
	var types [16]C.int32_t
	for i, k := range kinds {
		types[i] = C.int32_t(k.descriptorType())
	}
	var sl, pl C.shim_handle
	r := vk.Result(C.shim_create_layouts(handle(unsafe.Pointer(d)), &types[0], C.uint32_t(len(kinds)), C.uint32_t(pushBytes), &sl, &pl))
	return vk.DescriptorSetLayout(unsafe.Pointer(sl)), vk.PipelineLayout(unsafe.Pointer(pl)), r
}

func createComputePipeline(d vk.Device, cache vk.PipelineCache, mod vk.ShaderModule, lay vk.PipelineLayout, spec []uint32) (vk.Pipeline, vk.Result) {
	var cs [64]C.uint32_t
	for i, v := range spec {
		cs[i] = C.uint32_t(v)
	}
	var p C.shim_handle
	r := vk.Result(C.shim_create_compute_pipeline(handle(unsafe.Pointer(d)), handle(unsafe.Pointer(cache)),
		handle(unsafe.Pointer(mod)), handle(unsafe.Pointer(lay)), &cs[0], C.uint32_t(len(spec)), &p))
	return vk.Pipeline(unsafe.Pointer(p)), r
}

func createDescriptorPool(d vk.Device, maxSets, perType uint32) (vk.DescriptorPool, vk.Result) {
	var p C.shim_handle
	r := vk.Result(C.shim_create_descriptor_pool(handle(unsafe.Pointer(d)), C.uint32_t(maxSets), C.uint32_t(perType), &p))
	return vk.DescriptorPool(unsafe.Pointer(p)), r
}

// descriptorWrite is one binding of a descriptor-set update.
type descriptorWrite struct {
	kind BindingKind
	buf  vk.Buffer
	off  int64
	size int64
	view vk.BufferView
}

func writeDescriptorSet(d vk.Device, set vk.DescriptorSet, ws []descriptorWrite) {
	var types [16]C.int32_t
	var bufs, views [16]C.shim_handle
	var offs, ranges [16]C.uint64_t
	for i, w := range ws {
		types[i] = C.int32_t(w.kind.descriptorType())
		bufs[i] = handle(unsafe.Pointer(w.buf))
		views[i] = handle(unsafe.Pointer(w.view))
		offs[i] = C.uint64_t(w.off)
		ranges[i] = C.uint64_t(w.size)
	}
	C.shim_write_descriptor_set(handle(unsafe.Pointer(d)), handle(unsafe.Pointer(set)), C.uint32_t(len(ws)),
		&types[0], &bufs[0], &offs[0], &ranges[0], &views[0])
}

func syncMapped(d vk.Device, mem vk.DeviceMemory, off, size int64, flush bool) vk.Result {
	f := C.int(0)
	if flush {
		f = 1
	}
	return vk.Result(C.shim_sync_mapped(handle(unsafe.Pointer(d)), handle(unsafe.Pointer(mem)), C.uint64_t(off), C.uint64_t(size), f))
}
