// vkshim.c: see vkshim.h. The Vulkan structures come from the Khronos
// headers (Debian package libvulkan-dev), so their layouts are the
// specification's; only the functions are loaded at run time
// (VK_NO_PROTOTYPES: nothing links against libvulkan).
#include "vkshim.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan_core.h>

// shim_handle carries every Vulkan handle: dispatchable handles are
// pointers, and so are non-dispatchable ones on 64-bit platforms.
_Static_assert(sizeof(shim_handle) == sizeof(VkBuffer), "non-dispatchable Vulkan handles must be pointers (64-bit platform)");
_Static_assert(VK_USE_64_BIT_PTR_DEFINES == 1, "non-dispatchable Vulkan handles must be pointers (64-bit platform)");

// VK_KHR_cooperative_matrix is newer than some distributions' headers
// (Debian 12 ships 1.3.239); its two structures are declared here when the
// header lacks them, following the registry (vk.xml), and checked against
// the header when it has them.
#ifdef VK_KHR_cooperative_matrix
typedef VkPhysicalDeviceCooperativeMatrixFeaturesKHR coopmat_features;
typedef VkCooperativeMatrixPropertiesKHR coopmat_props;
#else
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef struct {
	VkStructureType sType;
	void *pNext;
	VkBool32 cooperativeMatrix;
	VkBool32 cooperativeMatrixRobustBufferAccess;
} coopmat_features;
typedef struct {
	VkStructureType sType;
	void *pNext;
	uint32_t MSize, NSize, KSize;
	int32_t AType, BType, CType, ResultType; // VkComponentTypeKHR
	VkBool32 saturatingAccumulation;
	int32_t scope; // VkScopeKHR
} coopmat_props;
#endif
// The layout rules the registry implies, whichever declaration is in use.
_Static_assert(offsetof(coopmat_features, cooperativeMatrix) == 16 && sizeof(coopmat_features) == 24, "VkPhysicalDeviceCooperativeMatrixFeaturesKHR layout");
_Static_assert(offsetof(coopmat_props, MSize) == 16 && offsetof(coopmat_props, saturatingAccumulation) == 44 &&
                   offsetof(coopmat_props, scope) == 48 && sizeof(coopmat_props) == 56,
               "VkCooperativeMatrixPropertiesKHR layout");
typedef VkResult (*PFN_getCoopMatProps)(VkPhysicalDevice, uint32_t *, coopmat_props *);

// Function pointers ------------------------------------------------------------

static PFN_vkGetInstanceProcAddr getInstanceProcAddr;
static VkInstance shim_current_instance;
static PFN_vkGetPhysicalDeviceProperties2 fnGetProperties2;
static PFN_vkGetPhysicalDeviceFeatures2 fnGetFeatures2;
static PFN_getCoopMatProps fnGetCoopMatProps;
static PFN_vkCreateDevice fnCreateDevice;
static PFN_vkGetDeviceProcAddr getDeviceProcAddr;
static PFN_vkCreateDebugUtilsMessengerEXT fnCreateMessenger;
static PFN_vkDestroyDebugUtilsMessengerEXT fnDestroyMessenger;

// Device-level functions, loaded per device with vkGetDeviceProcAddr so that
// calls skip the loader's trampolines and two devices from different drivers
// can coexist.
struct shim_fns {
	PFN_vkCmdBindPipeline CmdBindPipeline;
	PFN_vkCmdBindDescriptorSets CmdBindDescriptorSets;
	PFN_vkCmdPushConstants CmdPushConstants;
	PFN_vkCmdDispatch CmdDispatch;
	PFN_vkCmdPipelineBarrier CmdPipelineBarrier;
	PFN_vkCmdFillBuffer CmdFillBuffer;
	PFN_vkCmdCopyBuffer CmdCopyBuffer;
	PFN_vkCmdWriteTimestamp CmdWriteTimestamp;
	PFN_vkCmdResetQueryPool CmdResetQueryPool;
	PFN_vkQueueSubmit QueueSubmit;
	PFN_vkWaitForFences WaitForFences;
	PFN_vkResetFences ResetFences;
	PFN_vkGetFenceStatus GetFenceStatus;
	PFN_vkBeginCommandBuffer BeginCommandBuffer;
	PFN_vkEndCommandBuffer EndCommandBuffer;
	PFN_vkResetCommandBuffer ResetCommandBuffer;
};

void *shim_load(const char *name, char *err, size_t errlen) {
	if (getInstanceProcAddr) {
		return (void *)getInstanceProcAddr;
	}
	void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "%s", dlerror());
		return NULL;
	}
	getInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
	if (!getInstanceProcAddr) {
		snprintf(err, errlen, "%s has no vkGetInstanceProcAddr", name);
		return NULL;
	}
	return (void *)getInstanceProcAddr;
}

uint32_t shim_instance_version(void) {
	PFN_vkEnumerateInstanceVersion fn = (PFN_vkEnumerateInstanceVersion)getInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
	if (!fn) {
		return VK_API_VERSION_1_0; // Vulkan 1.0 loader
	}
	uint32_t v = 0;
	if (fn(&v) != VK_SUCCESS) {
		return VK_API_VERSION_1_0;
	}
	return v;
}

#define LOAD_I(var, name) var = (__typeof__(var))getInstanceProcAddr(instance, name)

int shim_init_instance(shim_handle handle) {
	VkInstance instance = handle;
	shim_current_instance = instance;
	LOAD_I(fnGetProperties2, "vkGetPhysicalDeviceProperties2");
	LOAD_I(fnGetFeatures2, "vkGetPhysicalDeviceFeatures2");
	LOAD_I(fnGetCoopMatProps, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
	LOAD_I(fnCreateDevice, "vkCreateDevice");
	LOAD_I(getDeviceProcAddr, "vkGetDeviceProcAddr");
	LOAD_I(fnCreateMessenger, "vkCreateDebugUtilsMessengerEXT");
	LOAD_I(fnDestroyMessenger, "vkDestroyDebugUtilsMessengerEXT");
	return (fnGetProperties2 && fnGetFeatures2 && fnCreateDevice && getDeviceProcAddr) ? 0 : -1;
}

// push_chain puts structure s (of type stype) at the front of head's pNext
// chain.
static void push_chain(void *head, void *s, VkStructureType stype) {
	VkBaseOutStructure *h = head, *x = s;
	x->sType = stype;
	x->pNext = h->pNext;
	h->pNext = x;
}

int shim_query_caps(shim_handle phys, const shim_exts *exts, shim_caps *caps) {
	memset(caps, 0, sizeof(*caps));
	if (exts->api_version < VK_API_VERSION_1_1) {
		return -1; // Properties2 is core from Vulkan 1.1
	}
	VkPhysicalDeviceProperties2 p2;
	VkPhysicalDeviceSubgroupProperties sg;
	VkPhysicalDeviceSubgroupSizeControlProperties sgs;
	VkPhysicalDeviceDriverProperties drv;
	VkPhysicalDeviceMaintenance3Properties m3;
	VkPhysicalDeviceMaintenance4Properties m4;
	memset(&p2, 0, sizeof p2);
	memset(&sg, 0, sizeof sg);
	memset(&sgs, 0, sizeof sgs);
	memset(&drv, 0, sizeof drv);
	memset(&m3, 0, sizeof m3);
	memset(&m4, 0, sizeof m4);
	p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
	push_chain(&p2, &sg, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES);
	if (exts->ext_subgroup_size) push_chain(&p2, &sgs, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES);
	if (exts->ext_driver_props) push_chain(&p2, &drv, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES);
	if (exts->ext_maintenance3) push_chain(&p2, &m3, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES);
	if (exts->ext_maintenance4) push_chain(&p2, &m4, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES);
	fnGetProperties2((VkPhysicalDevice)phys, &p2);

	caps->subgroup_size = sg.subgroupSize;
	caps->subgroup_stages = sg.supportedStages;
	caps->subgroup_ops = sg.supportedOperations;
	caps->min_subgroup_size = exts->ext_subgroup_size ? sgs.minSubgroupSize : sg.subgroupSize;
	caps->max_subgroup_size = exts->ext_subgroup_size ? sgs.maxSubgroupSize : sg.subgroupSize;
	caps->driver_id = (uint32_t)drv.driverID;
	_Static_assert(sizeof caps->driver_name == sizeof drv.driverName && sizeof caps->driver_info == sizeof drv.driverInfo,
	               "driver name and info sizes");
	memcpy(caps->driver_name, drv.driverName, sizeof caps->driver_name);
	memcpy(caps->driver_info, drv.driverInfo, sizeof caps->driver_info);
	caps->driver_name[sizeof caps->driver_name - 1] = caps->driver_info[sizeof caps->driver_info - 1] = 0;
	caps->max_memory_allocation_size = m3.maxMemoryAllocationSize;
	caps->max_buffer_size = m4.maxBufferSize;

	VkPhysicalDeviceFeatures2 f2;
	VkPhysicalDevice16BitStorageFeatures s16;
	VkPhysicalDevice8BitStorageFeatures s8;
	VkPhysicalDeviceShaderFloat16Int8Features f16;
	VkPhysicalDeviceBufferDeviceAddressFeatures bda;
	VkPhysicalDeviceSubgroupSizeControlFeatures sgf;
	coopmat_features cm;
	memset(&f2, 0, sizeof f2);
	memset(&s16, 0, sizeof s16);
	memset(&s8, 0, sizeof s8);
	memset(&f16, 0, sizeof f16);
	memset(&bda, 0, sizeof bda);
	memset(&sgf, 0, sizeof sgf);
	memset(&cm, 0, sizeof cm);
	f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
	if (exts->ext_16bit_storage) push_chain(&f2, &s16, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
	if (exts->ext_8bit_storage) push_chain(&f2, &s8, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES);
	if (exts->ext_float16_int8) push_chain(&f2, &f16, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES);
	if (exts->ext_bda) push_chain(&f2, &bda, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_BUFFER_DEVICE_ADDRESS_FEATURES);
	if (exts->ext_subgroup_size) push_chain(&f2, &sgf, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES);
	if (exts->ext_coopmat) push_chain(&f2, &cm, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR);
	fnGetFeatures2((VkPhysicalDevice)phys, &f2);
	caps->storage_buffer_16bit = s16.storageBuffer16BitAccess;
	caps->uniform_storage_16bit = s16.uniformAndStorageBuffer16BitAccess;
	caps->storage_push_16bit = s16.storagePushConstant16;
	caps->storage_buffer_8bit = s8.storageBuffer8BitAccess;
	caps->shader_float16 = f16.shaderFloat16;
	caps->shader_int8 = f16.shaderInt8;
	caps->buffer_device_address = bda.bufferDeviceAddress;
	caps->subgroup_size_control = sgf.subgroupSizeControl;
	caps->compute_full_subgroups = sgf.computeFullSubgroups;
	caps->cooperative_matrix = cm.cooperativeMatrix;

	if (exts->ext_coopmat && cm.cooperativeMatrix && fnGetCoopMatProps) {
		uint32_t n = 0;
		if (fnGetCoopMatProps((VkPhysicalDevice)phys, &n, NULL) == VK_SUCCESS && n > 0) {
			if (n > SHIM_MAX_COOPMAT) n = SHIM_MAX_COOPMAT;
			coopmat_props *cp = calloc(n, sizeof *cp);
			if (cp) {
				for (uint32_t i = 0; i < n; i++) cp[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
				VkResult r = fnGetCoopMatProps((VkPhysicalDevice)phys, &n, cp);
				if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
					caps->n_coopmat = n;
					for (uint32_t i = 0; i < n; i++) {
						shim_coopmat *o = &caps->coopmat[i];
						o->m = cp[i].MSize;
						o->n = cp[i].NSize;
						o->k = cp[i].KSize;
						o->a_type = (uint32_t)cp[i].AType;
						o->b_type = (uint32_t)cp[i].BType;
						o->c_type = (uint32_t)cp[i].CType;
						o->result_type = (uint32_t)cp[i].ResultType;
						o->saturating = cp[i].saturatingAccumulation;
						o->scope = (uint32_t)cp[i].scope;
					}
				}
				free(cp);
			}
		}
	}
	return 0;
}

int32_t shim_create_device(shim_handle phys, const shim_exts *exts,
                           const shim_device_request *req, shim_handle *device) {
	float priority = 1.0f;
	VkDeviceQueueCreateInfo q;
	memset(&q, 0, sizeof q);
	q.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
	q.queueFamilyIndex = req->queue_family;
	q.queueCount = 1;
	q.pQueuePriorities = &priority;

	// Only the features a shader needs are requested (see gpu/features.go):
	// a structure the active layers do not know is a validation error.
	VkPhysicalDeviceFeatures2 f2;
	VkPhysicalDevice16BitStorageFeatures s16;
	VkPhysicalDevice8BitStorageFeatures s8;
	VkPhysicalDeviceShaderFloat16Int8Features f16;
	memset(&f2, 0, sizeof f2);
	memset(&s16, 0, sizeof s16);
	memset(&s8, 0, sizeof s8);
	memset(&f16, 0, sizeof f16);
	f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
	if (req->storage_buffer_16bit && exts->ext_16bit_storage) {
		s16.storageBuffer16BitAccess = VK_TRUE;
		push_chain(&f2, &s16, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
	}
	if (req->storage_buffer_8bit && exts->ext_8bit_storage) {
		s8.storageBuffer8BitAccess = VK_TRUE;
		push_chain(&f2, &s8, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES);
	}
	if ((req->shader_float16 || req->shader_int8) && exts->ext_float16_int8) {
		f16.shaderFloat16 = req->shader_float16 ? VK_TRUE : VK_FALSE;
		f16.shaderInt8 = req->shader_int8 ? VK_TRUE : VK_FALSE;
		push_chain(&f2, &f16, VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES);
	}

	VkDeviceCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
	ci.pNext = exts->api_version >= VK_API_VERSION_1_1 && f2.pNext ? &f2 : NULL;
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &q;
	ci.enabledExtensionCount = req->n_extensions;
	ci.ppEnabledExtensionNames = req->extensions;
	VkDevice dev = VK_NULL_HANDLE;
	VkResult r = fnCreateDevice((VkPhysicalDevice)phys, &ci, NULL, &dev);
	*device = dev;
	return r;
}

#define LOAD_D(member, name)                                                \
	do {                                                                    \
		f->member = (__typeof__(f->member))getDeviceProcAddr(device, name); \
		if (!f->member) {                                                   \
			free(f);                                                        \
			return NULL;                                                    \
		}                                                                   \
	} while (0)

shim_fns *shim_init_device(shim_handle handle) {
	VkDevice device = handle;
	shim_fns *f = calloc(1, sizeof *f);
	if (!f) return NULL;
	LOAD_D(CmdBindPipeline, "vkCmdBindPipeline");
	LOAD_D(CmdBindDescriptorSets, "vkCmdBindDescriptorSets");
	LOAD_D(CmdPushConstants, "vkCmdPushConstants");
	LOAD_D(CmdDispatch, "vkCmdDispatch");
	LOAD_D(CmdPipelineBarrier, "vkCmdPipelineBarrier");
	LOAD_D(CmdFillBuffer, "vkCmdFillBuffer");
	LOAD_D(CmdCopyBuffer, "vkCmdCopyBuffer");
	LOAD_D(CmdWriteTimestamp, "vkCmdWriteTimestamp");
	LOAD_D(CmdResetQueryPool, "vkCmdResetQueryPool");
	LOAD_D(QueueSubmit, "vkQueueSubmit");
	LOAD_D(WaitForFences, "vkWaitForFences");
	LOAD_D(ResetFences, "vkResetFences");
	LOAD_D(GetFenceStatus, "vkGetFenceStatus");
	LOAD_D(BeginCommandBuffer, "vkBeginCommandBuffer");
	LOAD_D(EndCommandBuffer, "vkEndCommandBuffer");
	LOAD_D(ResetCommandBuffer, "vkResetCommandBuffer");
	return f;
}

void shim_free_device(shim_fns *f) { free(f); }

// Validation messages ------------------------------------------------------------

static pthread_mutex_t msg_mu = PTHREAD_MUTEX_INITIALIZER;
static char *msg_buf;
static size_t msg_len, msg_cap;
static int msg_count;

enum { MSG_KEEP = 1 << 16 }; // bytes kept; later messages are counted, not stored

static VkBool32 VKAPI_PTR messenger_cb(VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
                                       const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
	(void)types;
	(void)user;
	const char *level = (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning";
	const char *text = (data && data->pMessage) ? data->pMessage : "(no message)";
	pthread_mutex_lock(&msg_mu);
	msg_count++;
	size_t need = strlen(level) + strlen(text) + 4;
	if (msg_len + need < MSG_KEEP) {
		if (msg_len + need > msg_cap) {
			size_t cap = msg_cap ? msg_cap * 2 : 4096;
			while (cap < msg_len + need) cap *= 2;
			char *nb = realloc(msg_buf, cap);
			if (nb) {
				msg_buf = nb;
				msg_cap = cap;
			}
		}
		if (msg_len + need <= msg_cap) {
			msg_len += (size_t)snprintf(msg_buf + msg_len, msg_cap - msg_len, "%s: %s\n", level, text);
		}
	}
	pthread_mutex_unlock(&msg_mu);
	return VK_FALSE; // never abort the call
}

int32_t shim_create_messenger(shim_handle instance, shim_handle *messenger) {
	if (!fnCreateMessenger) return VK_ERROR_EXTENSION_NOT_PRESENT;
	VkDebugUtilsMessengerCreateInfoEXT ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
	ci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
	ci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
	                 VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
	ci.pfnUserCallback = messenger_cb;
	VkDebugUtilsMessengerEXT m = VK_NULL_HANDLE;
	VkResult r = fnCreateMessenger((VkInstance)instance, &ci, NULL, &m);
	*messenger = m;
	return r;
}

void shim_destroy_messenger(shim_handle instance, shim_handle messenger) {
	if (fnDestroyMessenger && messenger) fnDestroyMessenger((VkInstance)instance, (VkDebugUtilsMessengerEXT)messenger, NULL);
}

int shim_take_messages(char *buf, size_t len) {
	pthread_mutex_lock(&msg_mu);
	int n = msg_count;
	if (len > 0) {
		size_t c = msg_len < len - 1 ? msg_len : len - 1;
		if (c) memcpy(buf, msg_buf, c);
		buf[c] = 0;
	}
	msg_len = 0;
	msg_count = 0;
	pthread_mutex_unlock(&msg_mu);
	return n;
}

// Recording ------------------------------------------------------------------------

int shim_record(const shim_fns *f, shim_handle handle, const shim_cmd *cmds, int n) {
	VkCommandBuffer cb = handle;
	const VkPipelineStageFlags work = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
	const VkAccessFlags writes = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
	VkPipeline bound = VK_NULL_HANDLE;
	for (int i = 0; i < n; i++) {
		const shim_cmd *c = &cmds[i];
		switch (c->op) {
		case SHIM_CMD_DISPATCH:
			if ((VkPipeline)c->pipeline != bound) {
				bound = c->pipeline;
				f->CmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, bound);
			}
			if (c->set) {
				VkDescriptorSet set = c->set;
				f->CmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, (VkPipelineLayout)c->layout, 0, 1, &set, 0, NULL);
			}
			if (c->push_words) {
				f->CmdPushConstants(cb, (VkPipelineLayout)c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, c->push_words * 4, c->push);
			}
			f->CmdDispatch(cb, c->x, c->y, c->z);
			break;
		case SHIM_CMD_BARRIER: {
			VkMemoryBarrier b = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, writes,
			                     VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
			                         VK_ACCESS_TRANSFER_WRITE_BIT};
			f->CmdPipelineBarrier(cb, work, work, 0, 1, &b, 0, NULL, 0, NULL);
			break;
		}
		case SHIM_CMD_HOST_BARRIER: {
			VkMemoryBarrier b = {VK_STRUCTURE_TYPE_MEMORY_BARRIER, NULL, writes, VK_ACCESS_HOST_READ_BIT};
			f->CmdPipelineBarrier(cb, work, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &b, 0, NULL, 0, NULL);
			break;
		}
		case SHIM_CMD_FILL:
			f->CmdFillBuffer(cb, (VkBuffer)c->buf, c->off, c->size, c->x);
			break;
		case SHIM_CMD_COPY: {
			VkBufferCopy r = {c->off, c->off2, c->size};
			f->CmdCopyBuffer(cb, (VkBuffer)c->buf, (VkBuffer)c->buf2, 1, &r);
			break;
		}
		case SHIM_CMD_TIMESTAMP:
			f->CmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, (VkQueryPool)c->buf, c->x);
			break;
		case SHIM_CMD_RESET_QUERIES:
			f->CmdResetQueryPool(cb, (VkQueryPool)c->buf, 0, c->x);
			break;
		}
	}
	return 0;
}

int32_t shim_submit(const shim_fns *f, shim_handle queue, shim_handle cmdbuf, shim_handle fence) {
	VkCommandBuffer cb = cmdbuf;
	VkSubmitInfo si;
	memset(&si, 0, sizeof si);
	si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cb;
	return f->QueueSubmit((VkQueue)queue, 1, &si, (VkFence)fence);
}

int32_t shim_wait_fence(const shim_fns *f, shim_handle device, shim_handle fence, uint64_t timeout) {
	VkFence fc = fence;
	VkResult r = f->WaitForFences((VkDevice)device, 1, &fc, VK_TRUE, timeout);
	if (r != VK_SUCCESS) return r;
	return f->ResetFences((VkDevice)device, 1, &fc);
}

int32_t shim_fence_status(const shim_fns *f, shim_handle device, shim_handle fence) {
	return f->GetFenceStatus((VkDevice)device, (VkFence)fence);
}

int32_t shim_begin(const shim_fns *f, shim_handle cmdbuf, uint32_t one_time) {
	VkCommandBufferBeginInfo bi;
	memset(&bi, 0, sizeof bi);
	bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
	bi.flags = one_time ? VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT : 0;
	return f->BeginCommandBuffer((VkCommandBuffer)cmdbuf, &bi);
}

int32_t shim_end(const shim_fns *f, shim_handle cmdbuf) { return f->EndCommandBuffer((VkCommandBuffer)cmdbuf); }

int32_t shim_reset_cmdbuf(const shim_fns *f, shim_handle cmdbuf) { return f->ResetCommandBuffer((VkCommandBuffer)cmdbuf, 0); }

// Name lists ------------------------------------------------------------------------

static size_t append_name(char *buf, size_t len, size_t at, const char *name) {
	size_t n = strlen(name);
	if (at + n + 2 > len) return at;
	memcpy(buf + at, name, n);
	buf[at + n] = '\n';
	buf[at + n + 1] = 0;
	return at + n + 1;
}

int shim_instance_layers(char *buf, size_t len) {
	PFN_vkEnumerateInstanceLayerProperties fn =
	    (PFN_vkEnumerateInstanceLayerProperties)getInstanceProcAddr(NULL, "vkEnumerateInstanceLayerProperties");
	if (!fn || len == 0) return -1;
	buf[0] = 0;
	uint32_t n = 0;
	if (fn(&n, NULL) != VK_SUCCESS) return -1;
	VkLayerProperties *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return -1;
	VkResult r = fn(&n, p);
	size_t at = 0;
	for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++) at = append_name(buf, len, at, p[i].layerName);
	free(p);
	return (int)n;
}

uint32_t shim_layer_version(const char *name) {
	PFN_vkEnumerateInstanceLayerProperties fn =
	    (PFN_vkEnumerateInstanceLayerProperties)getInstanceProcAddr(NULL, "vkEnumerateInstanceLayerProperties");
	if (!fn) return 0;
	uint32_t n = 0;
	if (fn(&n, NULL) != VK_SUCCESS) return 0;
	VkLayerProperties *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return 0;
	VkResult r = fn(&n, p);
	uint32_t v = 0;
	for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++) {
		if (strcmp(p[i].layerName, name) == 0) v = p[i].specVersion;
	}
	free(p);
	return v;
}

int shim_instance_extensions(const char *layer, char *buf, size_t len) {
	PFN_vkEnumerateInstanceExtensionProperties fn =
	    (PFN_vkEnumerateInstanceExtensionProperties)getInstanceProcAddr(NULL, "vkEnumerateInstanceExtensionProperties");
	if (!fn || len == 0) return -1;
	buf[0] = 0;
	uint32_t n = 0;
	if (fn(layer, &n, NULL) != VK_SUCCESS) return -1;
	VkExtensionProperties *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return -1;
	VkResult r = fn(layer, &n, p);
	size_t at = 0;
	for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++) at = append_name(buf, len, at, p[i].extensionName);
	free(p);
	return (int)n;
}

int shim_device_extensions(shim_handle instance, shim_handle phys, char *buf, size_t len) {
	PFN_vkEnumerateDeviceExtensionProperties fn =
	    (PFN_vkEnumerateDeviceExtensionProperties)getInstanceProcAddr((VkInstance)instance, "vkEnumerateDeviceExtensionProperties");
	if (!fn || len == 0) return -1;
	buf[0] = 0;
	uint32_t n = 0;
	if (fn((VkPhysicalDevice)phys, NULL, &n, NULL) != VK_SUCCESS) return -1;
	VkExtensionProperties *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return -1;
	VkResult r = fn((VkPhysicalDevice)phys, NULL, &n, p);
	size_t at = 0;
	for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++) at = append_name(buf, len, at, p[i].extensionName);
	free(p);
	return (int)n;
}

// Validation features: synchronization validation catches missing barriers.
static const VkValidationFeatureEnableEXT sync_validation[1] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
static const VkValidationFeaturesEXT vfeatures = {VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT, NULL, 1, sync_validation, 0, NULL};

void *shim_validation_features(void) { return (void *)&vfeatures; }

// Object creation ---------------------------------------------------------------
//
// vulkan-go converts slices of structs (and structs holding such slices) to C
// memory whose lifetime is tied to a finalizer on a temporary; a garbage
// collection during the Vulkan call can free it while the driver reads it.
// Every call that takes such data is therefore made here, with the structs
// built on the C stack.

int32_t shim_create_instance(uint32_t api, const char *const *layers, uint32_t nlayers,
                             const char *const *exts, uint32_t nexts, int sync_validation,
                             shim_handle *instance) {
	PFN_vkCreateInstance fn = (PFN_vkCreateInstance)getInstanceProcAddr(NULL, "vkCreateInstance");
	if (!fn) return VK_ERROR_INITIALIZATION_FAILED;
	VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO, NULL, "shlpt-vk", 1, "shlpt-vk", 1, api};
	VkInstanceCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
	ci.pNext = sync_validation ? (const void *)&vfeatures : NULL;
	ci.pApplicationInfo = &app;
	ci.enabledLayerCount = nlayers;
	ci.ppEnabledLayerNames = layers;
	ci.enabledExtensionCount = nexts;
	ci.ppEnabledExtensionNames = exts;
	VkInstance inst = VK_NULL_HANDLE;
	VkResult r = fn(&ci, NULL, &inst);
	*instance = inst;
	return r;
}

int shim_memory_properties(shim_handle phys, shim_memory *out) {
	PFN_vkGetPhysicalDeviceMemoryProperties fn =
	    (PFN_vkGetPhysicalDeviceMemoryProperties)getInstanceProcAddr(shim_current_instance, "vkGetPhysicalDeviceMemoryProperties");
	if (!fn) return -1;
	_Static_assert(sizeof out->type_flags / sizeof out->type_flags[0] == VK_MAX_MEMORY_TYPES &&
	                   sizeof out->heap_size / sizeof out->heap_size[0] == VK_MAX_MEMORY_HEAPS,
	               "shim_memory holds every memory type and heap");
	VkPhysicalDeviceMemoryProperties p;
	memset(&p, 0, sizeof p);
	fn((VkPhysicalDevice)phys, &p);
	memset(out, 0, sizeof *out);
	out->n_types = p.memoryTypeCount > VK_MAX_MEMORY_TYPES ? VK_MAX_MEMORY_TYPES : p.memoryTypeCount;
	out->n_heaps = p.memoryHeapCount > VK_MAX_MEMORY_HEAPS ? VK_MAX_MEMORY_HEAPS : p.memoryHeapCount;
	for (uint32_t i = 0; i < out->n_types; i++) {
		out->type_flags[i] = p.memoryTypes[i].propertyFlags;
		out->type_heap[i] = p.memoryTypes[i].heapIndex;
	}
	for (uint32_t i = 0; i < out->n_heaps; i++) {
		out->heap_size[i] = p.memoryHeaps[i].size;
		out->heap_flags[i] = p.memoryHeaps[i].flags;
	}
	return 0;
}

int shim_queue_families(shim_handle phys, uint32_t *flags, uint32_t *timestamp_bits, int max) {
	PFN_vkGetPhysicalDeviceQueueFamilyProperties fn =
	    (PFN_vkGetPhysicalDeviceQueueFamilyProperties)getInstanceProcAddr(shim_current_instance, "vkGetPhysicalDeviceQueueFamilyProperties");
	if (!fn) return -1;
	uint32_t n = 0;
	fn((VkPhysicalDevice)phys, &n, NULL);
	if (n > (uint32_t)max) n = (uint32_t)max;
	VkQueueFamilyProperties p[64];
	memset(p, 0, sizeof p);
	if (n > 64) n = 64;
	fn((VkPhysicalDevice)phys, &n, p);
	for (uint32_t i = 0; i < n; i++) {
		flags[i] = p[i].queueFlags;
		timestamp_bits[i] = p[i].timestampValidBits;
	}
	return (int)n;
}

int32_t shim_create_layouts(shim_handle handle, const int32_t *types, uint32_t n, uint32_t push_bytes,
                            shim_handle *set_layout, shim_handle *pipeline_layout) {
	VkDevice device = handle;
	PFN_vkCreateDescriptorSetLayout mkSet = (PFN_vkCreateDescriptorSetLayout)getDeviceProcAddr(device, "vkCreateDescriptorSetLayout");
	PFN_vkCreatePipelineLayout mkPipe = (PFN_vkCreatePipelineLayout)getDeviceProcAddr(device, "vkCreatePipelineLayout");
	PFN_vkDestroyDescriptorSetLayout rmSet = (PFN_vkDestroyDescriptorSetLayout)getDeviceProcAddr(device, "vkDestroyDescriptorSetLayout");
	if (!mkSet || !mkPipe || !rmSet || n > 16) return VK_ERROR_INITIALIZATION_FAILED;
	VkDescriptorSetLayoutBinding b[16];
	memset(b, 0, sizeof b);
	for (uint32_t i = 0; i < n; i++) {
		b[i].binding = i;
		b[i].descriptorType = (VkDescriptorType)types[i];
		b[i].descriptorCount = 1;
		b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
	}
	VkDescriptorSetLayoutCreateInfo sci = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, NULL, 0, n, b};
	VkDescriptorSetLayout sl = VK_NULL_HANDLE;
	VkResult r = mkSet(device, &sci, NULL, &sl);
	if (r != VK_SUCCESS) return r;
	VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes};
	VkPipelineLayoutCreateInfo lci = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, NULL, 0, 1, &sl,
	                                  push_bytes ? 1u : 0u, push_bytes ? &pr : NULL};
	VkPipelineLayout pl = VK_NULL_HANDLE;
	r = mkPipe(device, &lci, NULL, &pl);
	if (r != VK_SUCCESS) {
		rmSet(device, sl, NULL);
		return r;
	}
	*set_layout = sl;
	*pipeline_layout = pl;
	return r;
}

int32_t shim_create_compute_pipeline(shim_handle handle, shim_handle cache, shim_handle module,
                                     shim_handle layout, const uint32_t *spec, uint32_t nspec,
                                     shim_handle *pipeline) {
	VkDevice device = handle;
	PFN_vkCreateComputePipelines fn = (PFN_vkCreateComputePipelines)getDeviceProcAddr(device, "vkCreateComputePipelines");
	if (!fn || nspec > 64) return VK_ERROR_INITIALIZATION_FAILED;
	VkSpecializationMapEntry entries[64];
	uint32_t data[64];
	for (uint32_t i = 0; i < nspec; i++) {
		entries[i].constantID = i;
		entries[i].offset = 4 * i;
		entries[i].size = 4;
		data[i] = spec[i];
	}
	VkSpecializationInfo si = {nspec, entries, 4 * (size_t)nspec, data};
	VkComputePipelineCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
	ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
	ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	ci.stage.module = (VkShaderModule)module;
	ci.stage.pName = "main";
	ci.stage.pSpecializationInfo = nspec ? &si : NULL;
	ci.layout = (VkPipelineLayout)layout;
	ci.basePipelineIndex = -1;
	VkPipeline p = VK_NULL_HANDLE;
	VkResult r = fn(device, (VkPipelineCache)cache, 1, &ci, NULL, &p);
	*pipeline = p;
	return r;
}

int32_t shim_create_descriptor_pool(shim_handle handle, uint32_t max_sets, uint32_t per_type, shim_handle *pool) {
	VkDevice device = handle;
	PFN_vkCreateDescriptorPool fn = (PFN_vkCreateDescriptorPool)getDeviceProcAddr(device, "vkCreateDescriptorPool");
	if (!fn) return VK_ERROR_INITIALIZATION_FAILED;
	VkDescriptorPoolSize sizes[3] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, per_type},
	                                 {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, per_type},
	                                 {VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER, per_type}};
	VkDescriptorPoolCreateInfo ci = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, NULL,
	                                 VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT, max_sets, 3, sizes};
	VkDescriptorPool p = VK_NULL_HANDLE;
	VkResult r = fn(device, &ci, NULL, &p);
	*pool = p;
	return r;
}

int shim_write_descriptor_set(shim_handle handle, shim_handle set, uint32_t n, const int32_t *types,
                              const shim_handle *buffers, const uint64_t *offsets, const uint64_t *ranges,
                              const shim_handle *views) {
	VkDevice device = handle;
	PFN_vkUpdateDescriptorSets fn = (PFN_vkUpdateDescriptorSets)getDeviceProcAddr(device, "vkUpdateDescriptorSets");
	if (!fn || n > 16) return -1;
	VkWriteDescriptorSet w[16];
	VkDescriptorBufferInfo bi[16];
	VkBufferView tv[16];
	memset(w, 0, sizeof w);
	for (uint32_t i = 0; i < n; i++) {
		w[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
		w[i].dstSet = (VkDescriptorSet)set;
		w[i].dstBinding = i;
		w[i].descriptorCount = 1;
		w[i].descriptorType = (VkDescriptorType)types[i];
		if (types[i] == VK_DESCRIPTOR_TYPE_STORAGE_BUFFER) {
			bi[i].buffer = (VkBuffer)buffers[i];
			bi[i].offset = offsets[i];
			bi[i].range = ranges[i];
			w[i].pBufferInfo = &bi[i];
		} else {
			tv[i] = (VkBufferView)views[i];
			w[i].pTexelBufferView = &tv[i];
		}
	}
	fn(device, n, w, 0, NULL);
	return 0;
}

int32_t shim_sync_mapped(shim_handle handle, shim_handle memory, uint64_t offset, uint64_t size, int flush) {
	VkDevice device = handle;
	PFN_vkFlushMappedMemoryRanges fn = (PFN_vkFlushMappedMemoryRanges)getDeviceProcAddr(
	    device, flush ? "vkFlushMappedMemoryRanges" : "vkInvalidateMappedMemoryRanges");
	if (!fn) return VK_ERROR_INITIALIZATION_FAILED;
	VkMappedMemoryRange r = {VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, NULL, (VkDeviceMemory)memory, offset, size};
	return fn(device, 1, &r);
}
