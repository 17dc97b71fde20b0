// vkshim: the small part of the Vulkan API that vulkan-go (Vulkan 1.0 core)
// does not bind, or binds too slowly for per-dispatch use:
//
//   - loading libvulkan.so.1 (the runtime loader's real name),
//   - vkGetPhysicalDeviceProperties2/Features2 queries (subgroups, fp16,
//     16-bit storage, buffer device address, cooperative matrices),
//   - vkCreateDevice with a pNext feature chain built in C memory,
//   - a debug-utils messenger that copies validation messages into C memory,
//   - recording a whole batch of dispatches and barriers in one cgo call,
//   - submit and fence wait for the hot path.
//
// This header passes every Vulkan handle as a shim_handle (handles are
// pointers on 64-bit platforms), so the Go side needs no Vulkan headers;
// vkshim.c builds the Vulkan structures from the Khronos headers
// (<vulkan/vulkan_core.h>, Debian package libvulkan-dev).
#ifndef SHLPT_VKSHIM_H
#define SHLPT_VKSHIM_H

#include <stdint.h>
#include <stddef.h>

typedef void *shim_handle; // any Vulkan handle (dispatchable or not, 64-bit)

// Loads the Vulkan loader library (normally libvulkan.so.1) and returns
// vkGetInstanceProcAddr, or NULL with a message in err (size errlen).
void *shim_load(const char *name, char *err, size_t errlen);

// Highest instance API version the loader supports (VK_MAKE_VERSION encoded).
uint32_t shim_instance_version(void);

// Loads the instance-level functions the shim needs. Returns 0 on success.
int shim_init_instance(shim_handle instance);

// Capability query -----------------------------------------------------------

typedef struct {
	uint32_t m, n, k;
	uint32_t a_type, b_type, c_type, result_type;
	uint32_t saturating;
	uint32_t scope;
} shim_coopmat;

#define SHIM_MAX_COOPMAT 64

// Which optional structures may be chained for a device (by its API version
// and extensions). Set by Go before shim_query_caps.
typedef struct {
	uint32_t api_version;
	uint32_t ext_16bit_storage;    // VK_KHR_16bit_storage or 1.1
	uint32_t ext_8bit_storage;     // VK_KHR_8bit_storage or 1.2
	uint32_t ext_float16_int8;     // VK_KHR_shader_float16_int8 or 1.2
	uint32_t ext_bda;              // VK_KHR_buffer_device_address or 1.2
	uint32_t ext_subgroup_size;    // VK_EXT_subgroup_size_control or 1.3
	uint32_t ext_driver_props;     // VK_KHR_driver_properties or 1.2
	uint32_t ext_maintenance3;     // VK_KHR_maintenance3 or 1.1
	uint32_t ext_maintenance4;     // VK_KHR_maintenance4 or 1.3
	uint32_t ext_coopmat;          // VK_KHR_cooperative_matrix
} shim_exts;

typedef struct {
	uint32_t subgroup_size;
	uint32_t subgroup_stages;
	uint32_t subgroup_ops;
	uint32_t min_subgroup_size, max_subgroup_size;
	uint32_t subgroup_size_control, compute_full_subgroups;
	uint32_t driver_id;
	char driver_name[256];
	char driver_info[256];
	uint64_t max_memory_allocation_size;
	uint64_t max_buffer_size;
	uint32_t storage_buffer_16bit, uniform_storage_16bit, storage_push_16bit;
	uint32_t storage_buffer_8bit;
	uint32_t shader_float16, shader_int8;
	uint32_t buffer_device_address;
	uint32_t cooperative_matrix;
	uint32_t n_coopmat;
	shim_coopmat coopmat[SHIM_MAX_COOPMAT];
} shim_caps;

// Fills caps for a physical device. Returns 0 on success.
int shim_query_caps(shim_handle phys, const shim_exts *exts, shim_caps *caps);

// Device creation -------------------------------------------------------------

typedef struct {
	uint32_t queue_family;
	uint32_t storage_buffer_16bit; // enable storageBuffer16BitAccess
	uint32_t shader_float16;
	uint32_t shader_int8;
	uint32_t storage_buffer_8bit;
	uint32_t n_extensions;
	const char *extensions[16];
} shim_device_request;

// Creates the logical device with the requested features chained through
// pNext in C memory. Returns a VkResult; *device is set on success.
int32_t shim_create_device(shim_handle phys, const shim_exts *exts,
                           const shim_device_request *req, shim_handle *device);

// Device-level function table (opaque), one per logical device.
typedef struct shim_fns shim_fns;

// Loads the device-level functions used by the recorder; NULL on failure.
shim_fns *shim_init_device(shim_handle device);
void shim_free_device(shim_fns *f);

// Validation messages ----------------------------------------------------------

// Creates a debug-utils messenger that records warning and error messages.
int32_t shim_create_messenger(shim_handle instance, shim_handle *messenger);
void shim_destroy_messenger(shim_handle instance, shim_handle messenger);

// Copies up to len-1 bytes of the pending messages (separated by "\n") into
// buf, clears them, and returns how many messages there were.
int shim_take_messages(char *buf, size_t len);

// Recording --------------------------------------------------------------------

enum {
	SHIM_CMD_DISPATCH = 1,
	SHIM_CMD_BARRIER = 2,     // compute/transfer writes -> compute/transfer reads+writes
	SHIM_CMD_FILL = 3,        // vkCmdFillBuffer(buf, off, size, value)
	SHIM_CMD_COPY = 4,        // vkCmdCopyBuffer(buf -> buf2)
	SHIM_CMD_TIMESTAMP = 5,   // vkCmdWriteTimestamp(pool, query)
	SHIM_CMD_RESET_QUERIES = 6, // vkCmdResetQueryPool(pool, 0, count)
	SHIM_CMD_HOST_BARRIER = 7 // writes -> host reads (end of a submit)
};

#define SHIM_MAX_PUSH_WORDS 32

typedef struct {
	uint32_t op;
	uint32_t x, y, z;          // dispatch groups; timestamp query index; fill value; reset count
	shim_handle pipeline;      // dispatch
	shim_handle layout;        // dispatch
	shim_handle set;           // dispatch
	shim_handle buf, buf2;     // fill/copy; query pool for timestamps
	uint64_t off, off2, size;  // fill/copy
	uint32_t push_words;
	uint32_t push[SHIM_MAX_PUSH_WORDS];
} shim_cmd;

// Records n commands into cmdbuf (already begun). Returns 0.
int shim_record(const shim_fns *f, shim_handle cmdbuf, const shim_cmd *cmds, int n);

// Submits one command buffer with a fence. Returns a VkResult.
int32_t shim_submit(const shim_fns *f, shim_handle queue, shim_handle cmdbuf, shim_handle fence);

// Waits for a fence (timeout in ns) and resets it on success. Returns a VkResult.
int32_t shim_wait_fence(const shim_fns *f, shim_handle device, shim_handle fence, uint64_t timeout);

// Returns the fence status without waiting (VK_SUCCESS or VK_NOT_READY).
int32_t shim_fence_status(const shim_fns *f, shim_handle device, shim_handle fence);

// Begins (flags: 1 = one time submit) and ends a primary command buffer.
int32_t shim_begin(const shim_fns *f, shim_handle cmdbuf, uint32_t one_time);
int32_t shim_end(const shim_fns *f, shim_handle cmdbuf);
int32_t shim_reset_cmdbuf(const shim_fns *f, shim_handle cmdbuf);



// Newline-separated names; each returns the count or -1.
int shim_instance_layers(char *buf, size_t len);
// The header version (specVersion) a layer was built with, 0 if absent.
uint32_t shim_layer_version(const char *name);
int shim_instance_extensions(const char *layer, char *buf, size_t len);
int shim_device_extensions(shim_handle instance, shim_handle phys, char *buf, size_t len);

// A static VkValidationFeaturesEXT enabling synchronization validation, to be
// chained into VkInstanceCreateInfo.pNext.
void *shim_validation_features(void);
// Object creation that vulkan-go would route through GC-managed C copies.

// Creates the instance (layers and extensions as NUL-terminated strings);
// sync_validation chains VkValidationFeaturesEXT. Returns a VkResult.
int32_t shim_create_instance(uint32_t api, const char *const *layers, uint32_t nlayers,
                             const char *const *exts, uint32_t nexts, int sync_validation,
                             shim_handle *instance);

typedef struct {
	uint32_t n_types, n_heaps;
	uint32_t type_flags[32], type_heap[32];
	uint64_t heap_size[16];
	uint32_t heap_flags[16];
} shim_memory;

int shim_memory_properties(shim_handle phys, shim_memory *out);

// Fills flags and timestamp bits of up to max queue families; returns the count.
int shim_queue_families(shim_handle phys, uint32_t *flags, uint32_t *timestamp_bits, int max);

// Creates a descriptor-set layout with n compute bindings of the given
// VkDescriptorTypes and a pipeline layout with push_bytes of push constants.
int32_t shim_create_layouts(shim_handle device, const int32_t *types, uint32_t n, uint32_t push_bytes,
                            shim_handle *set_layout, shim_handle *pipeline_layout);

// Creates a compute pipeline with nspec 32-bit specialization constants (ids 0..n-1).
int32_t shim_create_compute_pipeline(shim_handle device, shim_handle cache, shim_handle module,
                                     shim_handle layout, const uint32_t *spec, uint32_t nspec,
                                     shim_handle *pipeline);

// Creates a descriptor pool (freeable sets) for storage and texel buffers.
int32_t shim_create_descriptor_pool(shim_handle device, uint32_t max_sets, uint32_t per_type, shim_handle *pool);

// Writes bindings 0..n-1 of a set: storage buffers (type 7) from
// buffers/offsets/ranges, texel buffers from views.
int shim_write_descriptor_set(shim_handle device, shim_handle set, uint32_t n, const int32_t *types,
                              const shim_handle *buffers, const uint64_t *offsets, const uint64_t *ranges,
                              const shim_handle *views);

// Flushes (flush = 1) or invalidates a mapped memory range.
int32_t shim_sync_mapped(shim_handle device, shim_handle memory, uint64_t offset, uint64_t size, int flush);

#endif
