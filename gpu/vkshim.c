// vkshim.c: see vkshim.h. The struct layouts below follow the Vulkan
// specification (registry vk.xml); only the members the shim touches are
// named, the rest are sized placeholders.
#include "vkshim.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t VkResult_;
typedef uint32_t VkBool32_;
typedef void (*PFN_void)(void);
typedef PFN_void (*PFN_getInstanceProcAddr)(shim_handle instance, const char *name);
typedef PFN_void (*PFN_getDeviceProcAddr)(shim_handle device, const char *name);

enum {
	ST_DEVICE_QUEUE_CREATE_INFO = 2,
	ST_DEVICE_CREATE_INFO = 3,
	ST_SUBMIT_INFO = 4,
	ST_COMMAND_BUFFER_BEGIN_INFO = 42,
	ST_MEMORY_BARRIER = 46,
	ST_FEATURES_2 = 1000059000,
	ST_PROPERTIES_2 = 1000059001,
	ST_FLOAT16_INT8_FEATURES = 1000082000,
	ST_16BIT_STORAGE_FEATURES = 1000083000,
	ST_SUBGROUP_PROPERTIES = 1000094000,
	ST_DEBUG_UTILS_MESSENGER_CREATE_INFO = 1000128004,
	ST_MAINTENANCE_3_PROPERTIES = 1000168000,
	ST_8BIT_STORAGE_FEATURES = 1000177000,
	ST_DRIVER_PROPERTIES = 1000196000,
	ST_SUBGROUP_SIZE_CONTROL_PROPERTIES = 1000225000,
	ST_SUBGROUP_SIZE_CONTROL_FEATURES = 1000225002,
	ST_BDA_FEATURES = 1000257000,
	ST_MAINTENANCE_4_PROPERTIES = 1000413001,
	ST_COOPMAT_FEATURES_KHR = 1000506000,
	ST_COOPMAT_PROPERTIES_KHR = 1000506001,
};

typedef struct {
	int32_t sType;
	void *pNext;
} chain_head;

typedef struct {
	int32_t sType;
	void *pNext;
	uint64_t properties[1024 / 8]; // VkPhysicalDeviceProperties is 824 bytes
} props2;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ features[55]; // VkPhysicalDeviceFeatures
} features2;

typedef struct {
	int32_t sType;
	void *pNext;
	uint32_t subgroupSize;
	uint32_t supportedStages;
	uint32_t supportedOperations;
	VkBool32_ quadOperationsInAllStages;
} subgroup_props;

typedef struct {
	int32_t sType;
	void *pNext;
	uint32_t minSubgroupSize, maxSubgroupSize, maxComputeWorkgroupSubgroups;
	uint32_t requiredSubgroupSizeStages;
} subgroup_size_props;

typedef struct {
	int32_t sType;
	void *pNext;
	int32_t driverID;
	char driverName[256];
	char driverInfo[256];
	uint8_t conformance[4];
} driver_props;

typedef struct {
	int32_t sType;
	void *pNext;
	uint32_t maxPerSetDescriptors;
	uint64_t maxMemoryAllocationSize;
} maint3_props;

typedef struct {
	int32_t sType;
	void *pNext;
	uint64_t maxBufferSize;
} maint4_props;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ storageBuffer16BitAccess, uniformAndStorageBuffer16BitAccess;
	VkBool32_ storagePushConstant16, storageInputOutput16;
} storage16_features;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ storageBuffer8BitAccess, uniformAndStorageBuffer8BitAccess;
	VkBool32_ storagePushConstant8;
} storage8_features;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ shaderFloat16, shaderInt8;
} float16_int8_features;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ bufferDeviceAddress, captureReplay, multiDevice;
} bda_features;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ subgroupSizeControl, computeFullSubgroups;
} subgroup_size_features;

typedef struct {
	int32_t sType;
	void *pNext;
	VkBool32_ cooperativeMatrix, robustBufferAccess;
} coopmat_features;

typedef struct {
	int32_t sType;
	void *pNext;
	uint32_t MSize, NSize, KSize;
	int32_t AType, BType, CType, ResultType;
	VkBool32_ saturatingAccumulation;
	int32_t scope;
} coopmat_props;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t queueFamilyIndex;
	uint32_t queueCount;
	const float *pQueuePriorities;
} queue_create_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t queueCreateInfoCount;
	const queue_create_info *pQueueCreateInfos;
	uint32_t enabledLayerCount;
	const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount;
	const char *const *ppEnabledExtensionNames;
	const void *pEnabledFeatures;
} device_create_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	const char *pMessageIdName;
	int32_t messageIdNumber;
	const char *pMessage;
	// remaining members unused
} messenger_callback_data;

typedef VkBool32_ (*PFN_messenger_cb)(uint32_t severity, uint32_t types,
                                      const messenger_callback_data *data, void *user);

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t messageSeverity;
	uint32_t messageType;
	PFN_messenger_cb pfnUserCallback;
	void *pUserData;
} messenger_create_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t srcAccessMask, dstAccessMask;
} memory_barrier;

typedef struct {
	uint64_t srcOffset, dstOffset, size;
} buffer_copy;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t waitSemaphoreCount;
	const void *pWaitSemaphores;
	const uint32_t *pWaitDstStageMask;
	uint32_t commandBufferCount;
	const shim_handle *pCommandBuffers;
	uint32_t signalSemaphoreCount;
	const void *pSignalSemaphores;
} submit_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	const void *pInheritanceInfo;
} cmdbuf_begin_info;

// Function pointers ------------------------------------------------------------

static PFN_getInstanceProcAddr getInstanceProcAddr;
static shim_handle shim_current_instance;
static void (*fnGetProperties2)(shim_handle, void *);
static void (*fnGetFeatures2)(shim_handle, void *);
static VkResult_ (*fnGetCoopMatProps)(shim_handle, uint32_t *, coopmat_props *);
static VkResult_ (*fnCreateDevice)(shim_handle, const device_create_info *, const void *, shim_handle *);
static PFN_getDeviceProcAddr getDeviceProcAddr;
static VkResult_ (*fnCreateMessenger)(shim_handle, const messenger_create_info *, const void *, shim_handle *);
static void (*fnDestroyMessenger)(shim_handle, shim_handle, const void *);

// Device-level functions, loaded per device with vkGetDeviceProcAddr so that
// calls skip the loader's trampolines and two devices from different drivers
// can coexist.
struct shim_fns {
	void (*CmdBindPipeline)(shim_handle, uint32_t, shim_handle);
	void (*CmdBindDescriptorSets)(shim_handle, uint32_t, shim_handle, uint32_t, uint32_t,
	                              const shim_handle *, uint32_t, const uint32_t *);
	void (*CmdPushConstants)(shim_handle, shim_handle, uint32_t, uint32_t, uint32_t, const void *);
	void (*CmdDispatch)(shim_handle, uint32_t, uint32_t, uint32_t);
	void (*CmdPipelineBarrier)(shim_handle, uint32_t, uint32_t, uint32_t, uint32_t,
	                           const memory_barrier *, uint32_t, const void *, uint32_t, const void *);
	void (*CmdFillBuffer)(shim_handle, shim_handle, uint64_t, uint64_t, uint32_t);
	void (*CmdCopyBuffer)(shim_handle, shim_handle, shim_handle, uint32_t, const buffer_copy *);
	void (*CmdWriteTimestamp)(shim_handle, uint32_t, shim_handle, uint32_t);
	void (*CmdResetQueryPool)(shim_handle, shim_handle, uint32_t, uint32_t);
	VkResult_ (*QueueSubmit)(shim_handle, uint32_t, const submit_info *, shim_handle);
	VkResult_ (*WaitForFences)(shim_handle, uint32_t, const shim_handle *, VkBool32_, uint64_t);
	VkResult_ (*ResetFences)(shim_handle, uint32_t, const shim_handle *);
	VkResult_ (*GetFenceStatus)(shim_handle, shim_handle);
	VkResult_ (*BeginCommandBuffer)(shim_handle, const cmdbuf_begin_info *);
	VkResult_ (*EndCommandBuffer)(shim_handle);
	VkResult_ (*ResetCommandBuffer)(shim_handle, uint32_t);
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
	getInstanceProcAddr = (PFN_getInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
	if (!getInstanceProcAddr) {
		snprintf(err, errlen, "%s has no vkGetInstanceProcAddr", name);
		return NULL;
	}
	return (void *)getInstanceProcAddr;
}

uint32_t shim_instance_version(void) {
	VkResult_ (*fn)(uint32_t *) = (VkResult_(*)(uint32_t *))getInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
	if (!fn) {
		return 1u << 22; // Vulkan 1.0 loader
	}
	uint32_t v = 0;
	if (fn(&v) != 0) {
		return 1u << 22;
	}
	return v;
}

#define LOAD_I(var, name) var = (__typeof__(var))getInstanceProcAddr(instance, name)

int shim_init_instance(shim_handle instance) {
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

static void push_chain(chain_head *head, void *s, int32_t stype) {
	chain_head *h = (chain_head *)s;
	h->sType = stype;
	h->pNext = head->pNext;
	head->pNext = s;
}

int shim_query_caps(shim_handle phys, const shim_exts *exts, shim_caps *caps) {
	memset(caps, 0, sizeof(*caps));
	if (exts->api_version < ((1u << 22) | (1u << 12))) {
		return -1; // Properties2 is core from Vulkan 1.1
	}
	props2 p2;
	subgroup_props sg;
	subgroup_size_props sgs;
	driver_props drv;
	maint3_props m3;
	maint4_props m4;
	memset(&p2, 0, sizeof p2);
	memset(&sg, 0, sizeof sg);
	memset(&sgs, 0, sizeof sgs);
	memset(&drv, 0, sizeof drv);
	memset(&m3, 0, sizeof m3);
	memset(&m4, 0, sizeof m4);
	p2.sType = ST_PROPERTIES_2;
	push_chain((chain_head *)&p2, &sg, ST_SUBGROUP_PROPERTIES);
	if (exts->ext_subgroup_size) push_chain((chain_head *)&p2, &sgs, ST_SUBGROUP_SIZE_CONTROL_PROPERTIES);
	if (exts->ext_driver_props) push_chain((chain_head *)&p2, &drv, ST_DRIVER_PROPERTIES);
	if (exts->ext_maintenance3) push_chain((chain_head *)&p2, &m3, ST_MAINTENANCE_3_PROPERTIES);
	if (exts->ext_maintenance4) push_chain((chain_head *)&p2, &m4, ST_MAINTENANCE_4_PROPERTIES);
	fnGetProperties2(phys, &p2);

	caps->subgroup_size = sg.subgroupSize;
	caps->subgroup_stages = sg.supportedStages;
	caps->subgroup_ops = sg.supportedOperations;
	caps->min_subgroup_size = exts->ext_subgroup_size ? sgs.minSubgroupSize : sg.subgroupSize;
	caps->max_subgroup_size = exts->ext_subgroup_size ? sgs.maxSubgroupSize : sg.subgroupSize;
	caps->driver_id = (uint32_t)drv.driverID;
	memcpy(caps->driver_name, drv.driverName, sizeof caps->driver_name);
	memcpy(caps->driver_info, drv.driverInfo, sizeof caps->driver_info);
	caps->driver_name[255] = caps->driver_info[255] = 0;
	caps->max_memory_allocation_size = m3.maxMemoryAllocationSize;
	caps->max_buffer_size = m4.maxBufferSize;

	features2 f2;
	storage16_features s16;
	storage8_features s8;
	float16_int8_features f16;
	bda_features bda;
	subgroup_size_features sgf;
	coopmat_features cm;
	memset(&f2, 0, sizeof f2);
	memset(&s16, 0, sizeof s16);
	memset(&s8, 0, sizeof s8);
	memset(&f16, 0, sizeof f16);
	memset(&bda, 0, sizeof bda);
	memset(&sgf, 0, sizeof sgf);
	memset(&cm, 0, sizeof cm);
	f2.sType = ST_FEATURES_2;
	if (exts->ext_16bit_storage) push_chain((chain_head *)&f2, &s16, ST_16BIT_STORAGE_FEATURES);
	if (exts->ext_8bit_storage) push_chain((chain_head *)&f2, &s8, ST_8BIT_STORAGE_FEATURES);
	if (exts->ext_float16_int8) push_chain((chain_head *)&f2, &f16, ST_FLOAT16_INT8_FEATURES);
	if (exts->ext_bda) push_chain((chain_head *)&f2, &bda, ST_BDA_FEATURES);
	if (exts->ext_subgroup_size) push_chain((chain_head *)&f2, &sgf, ST_SUBGROUP_SIZE_CONTROL_FEATURES);
	if (exts->ext_coopmat) push_chain((chain_head *)&f2, &cm, ST_COOPMAT_FEATURES_KHR);
	fnGetFeatures2(phys, &f2);
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
		if (fnGetCoopMatProps(phys, &n, NULL) == 0 && n > 0) {
			if (n > SHIM_MAX_COOPMAT) n = SHIM_MAX_COOPMAT;
			coopmat_props *cp = calloc(n, sizeof *cp);
			if (cp) {
				for (uint32_t i = 0; i < n; i++) cp[i].sType = ST_COOPMAT_PROPERTIES_KHR;
				VkResult_ r = fnGetCoopMatProps(phys, &n, cp);
				if (r == 0 || r == 5 /* VK_INCOMPLETE */) {
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
	queue_create_info q;
	memset(&q, 0, sizeof q);
	q.sType = ST_DEVICE_QUEUE_CREATE_INFO;
	q.queueFamilyIndex = req->queue_family;
	q.queueCount = 1;
	q.pQueuePriorities = &priority;

	features2 f2;
	storage16_features s16;
	storage8_features s8;
	float16_int8_features f16;
	subgroup_size_features sgf;
	coopmat_features cm;
	memset(&f2, 0, sizeof f2);
	memset(&s16, 0, sizeof s16);
	memset(&s8, 0, sizeof s8);
	memset(&f16, 0, sizeof f16);
	memset(&sgf, 0, sizeof sgf);
	memset(&cm, 0, sizeof cm);
	f2.sType = ST_FEATURES_2;
	if (req->storage_buffer_16bit && exts->ext_16bit_storage) {
		s16.storageBuffer16BitAccess = 1;
		push_chain((chain_head *)&f2, &s16, ST_16BIT_STORAGE_FEATURES);
	}
	if (req->storage_buffer_8bit && exts->ext_8bit_storage) {
		s8.storageBuffer8BitAccess = 1;
		push_chain((chain_head *)&f2, &s8, ST_8BIT_STORAGE_FEATURES);
	}
	if ((req->shader_float16 || req->shader_int8) && exts->ext_float16_int8) {
		f16.shaderFloat16 = req->shader_float16 ? 1 : 0;
		f16.shaderInt8 = req->shader_int8 ? 1 : 0;
		push_chain((chain_head *)&f2, &f16, ST_FLOAT16_INT8_FEATURES);
	}
	if (req->subgroup_size_control && exts->ext_subgroup_size) {
		sgf.subgroupSizeControl = 1;
		push_chain((chain_head *)&f2, &sgf, ST_SUBGROUP_SIZE_CONTROL_FEATURES);
	}
	if (req->cooperative_matrix && exts->ext_coopmat) {
		cm.cooperativeMatrix = 1;
		push_chain((chain_head *)&f2, &cm, ST_COOPMAT_FEATURES_KHR);
	}

	device_create_info ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = ST_DEVICE_CREATE_INFO;
	ci.pNext = exts->api_version >= ((1u << 22) | (1u << 12)) ? &f2 : NULL;
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &q;
	ci.enabledExtensionCount = req->n_extensions;
	ci.ppEnabledExtensionNames = req->extensions;
	return fnCreateDevice(phys, &ci, NULL, device);
}

#define LOAD_D(member, name)                                            \
	do {                                                                \
		f->member = (__typeof__(f->member))getDeviceProcAddr(device, name); \
		if (!f->member) {                                               \
			free(f);                                                    \
			return NULL;                                                \
		}                                                               \
	} while (0)

shim_fns *shim_init_device(shim_handle device) {
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

static VkBool32_ messenger_cb(uint32_t severity, uint32_t types,
                              const messenger_callback_data *data, void *user) {
	(void)types;
	(void)user;
	const char *level = (severity & 0x1000) ? "error" : "warning";
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
	return 0; // never abort the call
}

int32_t shim_create_messenger(shim_handle instance, shim_handle *messenger) {
	if (!fnCreateMessenger) return -7; // VK_ERROR_EXTENSION_NOT_PRESENT
	messenger_create_info ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = ST_DEBUG_UTILS_MESSENGER_CREATE_INFO;
	ci.messageSeverity = 0x100 | 0x1000;  // warning | error
	ci.messageType = 0x1 | 0x2 | 0x4;     // general | validation | performance
	ci.pfnUserCallback = messenger_cb;
	return fnCreateMessenger(instance, &ci, NULL, messenger);
}

void shim_destroy_messenger(shim_handle instance, shim_handle messenger) {
	if (fnDestroyMessenger && messenger) fnDestroyMessenger(instance, messenger, NULL);
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

enum {
	STAGE_COMPUTE = 0x800,
	STAGE_TRANSFER = 0x1000,
	STAGE_BOTTOM = 0x2000,
	STAGE_HOST = 0x4000,
	ACCESS_SHADER_READ = 0x20,
	ACCESS_SHADER_WRITE = 0x40,
	ACCESS_TRANSFER_READ = 0x800,
	ACCESS_TRANSFER_WRITE = 0x1000,
	ACCESS_HOST_READ = 0x2000,
	BIND_POINT_COMPUTE = 1,
	STAGE_FLAG_COMPUTE = 0x20,
};

int shim_record(const shim_fns *f, shim_handle cb, const shim_cmd *cmds, int n) {
	shim_handle bound = NULL;
	for (int i = 0; i < n; i++) {
		const shim_cmd *c = &cmds[i];
		switch (c->op) {
		case SHIM_CMD_DISPATCH:
			if (c->pipeline != bound) {
				f->CmdBindPipeline(cb, BIND_POINT_COMPUTE, c->pipeline);
				bound = c->pipeline;
			}
			if (c->set) {
				f->CmdBindDescriptorSets(cb, BIND_POINT_COMPUTE, c->layout, 0, 1, &c->set, 0, NULL);
			}
			if (c->push_words) {
				f->CmdPushConstants(cb, c->layout, STAGE_FLAG_COMPUTE, 0, c->push_words * 4, c->push);
			}
			f->CmdDispatch(cb, c->x, c->y, c->z);
			break;
		case SHIM_CMD_BARRIER: {
			memory_barrier b = {ST_MEMORY_BARRIER, NULL,
			                    ACCESS_SHADER_WRITE | ACCESS_TRANSFER_WRITE,
			                    ACCESS_SHADER_READ | ACCESS_SHADER_WRITE | ACCESS_TRANSFER_READ | ACCESS_TRANSFER_WRITE};
			f->CmdPipelineBarrier(cb, STAGE_COMPUTE | STAGE_TRANSFER, STAGE_COMPUTE | STAGE_TRANSFER, 0,
			                     1, &b, 0, NULL, 0, NULL);
			break;
		}
		case SHIM_CMD_HOST_BARRIER: {
			memory_barrier b = {ST_MEMORY_BARRIER, NULL,
			                    ACCESS_SHADER_WRITE | ACCESS_TRANSFER_WRITE, ACCESS_HOST_READ};
			f->CmdPipelineBarrier(cb, STAGE_COMPUTE | STAGE_TRANSFER, STAGE_HOST, 0, 1, &b, 0, NULL, 0, NULL);
			break;
		}
		case SHIM_CMD_FILL:
			f->CmdFillBuffer(cb, c->buf, c->off, c->size, c->x);
			break;
		case SHIM_CMD_COPY: {
			buffer_copy r = {c->off, c->off2, c->size};
			f->CmdCopyBuffer(cb, c->buf, c->buf2, 1, &r);
			break;
		}
		case SHIM_CMD_TIMESTAMP:
			f->CmdWriteTimestamp(cb, STAGE_BOTTOM, c->buf, c->x);
			break;
		case SHIM_CMD_RESET_QUERIES:
			f->CmdResetQueryPool(cb, c->buf, 0, c->x);
			break;
		}
	}
	return 0;
}

int32_t shim_submit(const shim_fns *f, shim_handle queue, shim_handle cmdbuf, shim_handle fence) {
	submit_info si;
	memset(&si, 0, sizeof si);
	si.sType = ST_SUBMIT_INFO;
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cmdbuf;
	return f->QueueSubmit(queue, 1, &si, fence);
}

int32_t shim_wait_fence(const shim_fns *f, shim_handle device, shim_handle fence, uint64_t timeout) {
	VkResult_ r = f->WaitForFences(device, 1, &fence, 1, timeout);
	if (r != 0) return r;
	return f->ResetFences(device, 1, &fence);
}

int32_t shim_fence_status(const shim_fns *f, shim_handle device, shim_handle fence) {
	return f->GetFenceStatus(device, fence);
}

int32_t shim_begin(const shim_fns *f, shim_handle cmdbuf, uint32_t one_time) {
	cmdbuf_begin_info bi;
	memset(&bi, 0, sizeof bi);
	bi.sType = ST_COMMAND_BUFFER_BEGIN_INFO;
	bi.flags = one_time ? 1u : 0u;
	return f->BeginCommandBuffer(cmdbuf, &bi);
}

int32_t shim_end(const shim_fns *f, shim_handle cmdbuf) { return f->EndCommandBuffer(cmdbuf); }

int32_t shim_reset_cmdbuf(const shim_fns *f, shim_handle cmdbuf) { return f->ResetCommandBuffer(cmdbuf, 0); }

// Name lists ------------------------------------------------------------------------

typedef struct {
	char name[256];
	uint32_t specVersion;
} extension_props;

typedef struct {
	char layerName[256];
	uint32_t specVersion, implementationVersion;
	char description[256];
} layer_props;

static size_t append_name(char *buf, size_t len, size_t at, const char *name) {
	size_t n = strlen(name);
	if (at + n + 2 > len) return at;
	memcpy(buf + at, name, n);
	buf[at + n] = '\n';
	buf[at + n + 1] = 0;
	return at + n + 1;
}

int shim_instance_layers(char *buf, size_t len) {
	VkResult_ (*fn)(uint32_t *, layer_props *) =
	    (VkResult_(*)(uint32_t *, layer_props *))getInstanceProcAddr(NULL, "vkEnumerateInstanceLayerProperties");
	if (!fn || len == 0) return -1;
	buf[0] = 0;
	uint32_t n = 0;
	if (fn(&n, NULL) != 0) return -1;
	layer_props *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return -1;
	VkResult_ r = fn(&n, p);
	size_t at = 0;
	for (uint32_t i = 0; (r == 0 || r == 5) && i < n; i++) at = append_name(buf, len, at, p[i].layerName);
	free(p);
	return (int)n;
}

int shim_instance_extensions(const char *layer, char *buf, size_t len) {
	VkResult_ (*fn)(const char *, uint32_t *, extension_props *) =
	    (VkResult_(*)(const char *, uint32_t *, extension_props *))getInstanceProcAddr(NULL, "vkEnumerateInstanceExtensionProperties");
	if (!fn || len == 0) return -1;
	buf[0] = 0;
	uint32_t n = 0;
	if (fn(layer, &n, NULL) != 0) return -1;
	extension_props *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return -1;
	VkResult_ r = fn(layer, &n, p);
	size_t at = 0;
	for (uint32_t i = 0; (r == 0 || r == 5) && i < n; i++) at = append_name(buf, len, at, p[i].name);
	free(p);
	return (int)n;
}

int shim_device_extensions(shim_handle instance, shim_handle phys, char *buf, size_t len) {
	VkResult_ (*fn)(shim_handle, const char *, uint32_t *, extension_props *) =
	    (VkResult_(*)(shim_handle, const char *, uint32_t *, extension_props *))getInstanceProcAddr(instance, "vkEnumerateDeviceExtensionProperties");
	if (!fn || len == 0) return -1;
	buf[0] = 0;
	uint32_t n = 0;
	if (fn(phys, NULL, &n, NULL) != 0) return -1;
	extension_props *p = calloc(n ? n : 1, sizeof *p);
	if (!p) return -1;
	VkResult_ r = fn(phys, NULL, &n, p);
	size_t at = 0;
	for (uint32_t i = 0; (r == 0 || r == 5) && i < n; i++) at = append_name(buf, len, at, p[i].name);
	free(p);
	return (int)n;
}

// Validation features: synchronization validation catches missing barriers.
typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t enabledCount;
	const int32_t *pEnabled;
	uint32_t disabledCount;
	const int32_t *pDisabled;
} validation_features;

static const int32_t sync_validation[1] = {4}; // VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT
static validation_features vfeatures = {1000247000, NULL, 1, sync_validation, 0, NULL};

void *shim_validation_features(void) { return &vfeatures; }

// Object creation ---------------------------------------------------------------
//
// vulkan-go converts slices of structs (and structs holding such slices) to C
// memory whose lifetime is tied to a finalizer on a temporary; a garbage
// collection during the Vulkan call can free it while the driver reads it.
// Every call that takes such data is therefore made here, with the structs
// built on the C stack.

typedef struct {
	int32_t sType;
	const void *pNext;
	const char *pApplicationName;
	uint32_t applicationVersion;
	const char *pEngineName;
	uint32_t engineVersion;
	uint32_t apiVersion;
} application_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	const application_info *pApplicationInfo;
	uint32_t enabledLayerCount;
	const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount;
	const char *const *ppEnabledExtensionNames;
} instance_create_info;

int32_t shim_create_instance(uint32_t api, const char *const *layers, uint32_t nlayers,
                             const char *const *exts, uint32_t nexts, int sync_validation,
                             shim_handle *instance) {
	VkResult_ (*fn)(const instance_create_info *, const void *, shim_handle *) =
	    (VkResult_(*)(const instance_create_info *, const void *, shim_handle *))getInstanceProcAddr(NULL, "vkCreateInstance");
	if (!fn) return -3; // VK_ERROR_INITIALIZATION_FAILED
	application_info app = {0, NULL, "shlpt-vk", 1, "shlpt-vk", 1, api};
	instance_create_info ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = 1;
	ci.pNext = sync_validation ? (const void *)&vfeatures : NULL;
	ci.pApplicationInfo = &app;
	ci.enabledLayerCount = nlayers;
	ci.ppEnabledLayerNames = layers;
	ci.enabledExtensionCount = nexts;
	ci.ppEnabledExtensionNames = exts;
	return fn(&ci, NULL, instance);
}

typedef struct {
	uint32_t propertyFlags;
	uint32_t heapIndex;
} memory_type;

typedef struct {
	uint64_t size;
	uint32_t flags;
} memory_heap;

typedef struct {
	uint32_t memoryTypeCount;
	memory_type memoryTypes[32];
	uint32_t memoryHeapCount;
	memory_heap memoryHeaps[16];
} memory_props;

int shim_memory_properties(shim_handle phys, shim_memory *out) {
	void (*fn)(shim_handle, memory_props *) =
	    (void (*)(shim_handle, memory_props *))getInstanceProcAddr(shim_current_instance, "vkGetPhysicalDeviceMemoryProperties");
	if (!fn) return -1;
	memory_props p;
	memset(&p, 0, sizeof p);
	fn(phys, &p);
	memset(out, 0, sizeof *out);
	out->n_types = p.memoryTypeCount > 32 ? 32 : p.memoryTypeCount;
	out->n_heaps = p.memoryHeapCount > 16 ? 16 : p.memoryHeapCount;
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

typedef struct {
	uint32_t queueFlags;
	uint32_t queueCount;
	uint32_t timestampValidBits;
	uint32_t granularity[3];
} queue_family_props;

int shim_queue_families(shim_handle phys, uint32_t *flags, uint32_t *timestamp_bits, int max) {
	void (*fn)(shim_handle, uint32_t *, queue_family_props *) =
	    (void (*)(shim_handle, uint32_t *, queue_family_props *))getInstanceProcAddr(shim_current_instance, "vkGetPhysicalDeviceQueueFamilyProperties");
	if (!fn) return -1;
	uint32_t n = 0;
	fn(phys, &n, NULL);
	if (n > (uint32_t)max) n = (uint32_t)max;
	queue_family_props p[64];
	memset(p, 0, sizeof p);
	if (n > 64) n = 64;
	fn(phys, &n, p);
	for (uint32_t i = 0; i < n; i++) {
		flags[i] = p[i].queueFlags;
		timestamp_bits[i] = p[i].timestampValidBits;
	}
	return (int)n;
}

typedef struct {
	uint32_t binding;
	int32_t descriptorType;
	uint32_t descriptorCount;
	uint32_t stageFlags;
	const void *pImmutableSamplers;
} set_layout_binding;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t bindingCount;
	const set_layout_binding *pBindings;
} set_layout_create_info;

typedef struct {
	uint32_t stageFlags;
	uint32_t offset;
	uint32_t size;
} push_range;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t setLayoutCount;
	const shim_handle *pSetLayouts;
	uint32_t pushConstantRangeCount;
	const push_range *pPushConstantRanges;
} pipeline_layout_create_info;

int32_t shim_create_layouts(shim_handle device, const int32_t *types, uint32_t n, uint32_t push_bytes,
                            shim_handle *set_layout, shim_handle *pipeline_layout) {
	VkResult_ (*mkSet)(shim_handle, const set_layout_create_info *, const void *, shim_handle *) =
	    (VkResult_(*)(shim_handle, const set_layout_create_info *, const void *, shim_handle *))getDeviceProcAddr(device, "vkCreateDescriptorSetLayout");
	VkResult_ (*mkPipe)(shim_handle, const pipeline_layout_create_info *, const void *, shim_handle *) =
	    (VkResult_(*)(shim_handle, const pipeline_layout_create_info *, const void *, shim_handle *))getDeviceProcAddr(device, "vkCreatePipelineLayout");
	void (*rmSet)(shim_handle, shim_handle, const void *) =
	    (void (*)(shim_handle, shim_handle, const void *))getDeviceProcAddr(device, "vkDestroyDescriptorSetLayout");
	if (!mkSet || !mkPipe || !rmSet || n > 16) return -3;
	set_layout_binding b[16];
	memset(b, 0, sizeof b);
	for (uint32_t i = 0; i < n; i++) {
		b[i].binding = i;
		b[i].descriptorType = types[i];
		b[i].descriptorCount = 1;
		b[i].stageFlags = STAGE_FLAG_COMPUTE;
	}
	set_layout_create_info sci = {32 /* DESCRIPTOR_SET_LAYOUT_CREATE_INFO */, NULL, 0, n, b};
	VkResult_ r = mkSet(device, &sci, NULL, set_layout);
	if (r != 0) return r;
	push_range pr = {STAGE_FLAG_COMPUTE, 0, push_bytes};
	pipeline_layout_create_info lci = {30 /* PIPELINE_LAYOUT_CREATE_INFO */, NULL, 0, 1, set_layout,
	                                   push_bytes ? 1u : 0u, push_bytes ? &pr : NULL};
	r = mkPipe(device, &lci, NULL, pipeline_layout);
	if (r != 0) rmSet(device, *set_layout, NULL);
	return r;
}

typedef struct {
	uint32_t constantID;
	uint32_t offset;
	size_t size;
} spec_entry;

typedef struct {
	uint32_t mapEntryCount;
	const spec_entry *pMapEntries;
	size_t dataSize;
	const void *pData;
} spec_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t stage;
	shim_handle module;
	const char *pName;
	const spec_info *pSpecializationInfo;
} shader_stage_create_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	shader_stage_create_info stage;
	shim_handle layout;
	shim_handle basePipelineHandle;
	int32_t basePipelineIndex;
} compute_pipeline_create_info;

int32_t shim_create_compute_pipeline(shim_handle device, shim_handle cache, shim_handle module,
                                     shim_handle layout, const uint32_t *spec, uint32_t nspec,
                                     shim_handle *pipeline) {
	VkResult_ (*fn)(shim_handle, shim_handle, uint32_t, const compute_pipeline_create_info *, const void *, shim_handle *) =
	    (VkResult_(*)(shim_handle, shim_handle, uint32_t, const compute_pipeline_create_info *, const void *, shim_handle *))getDeviceProcAddr(device, "vkCreateComputePipelines");
	if (!fn || nspec > 64) return -3;
	spec_entry entries[64];
	uint32_t data[64];
	for (uint32_t i = 0; i < nspec; i++) {
		entries[i].constantID = i;
		entries[i].offset = 4 * i;
		entries[i].size = 4;
		data[i] = spec[i];
	}
	spec_info si = {nspec, entries, 4 * (size_t)nspec, data};
	compute_pipeline_create_info ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = 29; // COMPUTE_PIPELINE_CREATE_INFO
	ci.stage.sType = 18; // PIPELINE_SHADER_STAGE_CREATE_INFO
	ci.stage.stage = STAGE_FLAG_COMPUTE;
	ci.stage.module = module;
	ci.stage.pName = "main";
	ci.stage.pSpecializationInfo = nspec ? &si : NULL;
	ci.layout = layout;
	ci.basePipelineIndex = -1;
	return fn(device, cache, 1, &ci, NULL, pipeline);
}

typedef struct {
	int32_t type;
	uint32_t count;
} pool_size;

typedef struct {
	int32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t maxSets;
	uint32_t poolSizeCount;
	const pool_size *pPoolSizes;
} pool_create_info;

int32_t shim_create_descriptor_pool(shim_handle device, uint32_t max_sets, uint32_t per_type, shim_handle *pool) {
	VkResult_ (*fn)(shim_handle, const pool_create_info *, const void *, shim_handle *) =
	    (VkResult_(*)(shim_handle, const pool_create_info *, const void *, shim_handle *))getDeviceProcAddr(device, "vkCreateDescriptorPool");
	if (!fn) return -3;
	pool_size sizes[3] = {{7 /* STORAGE_BUFFER */, per_type}, {4 /* UNIFORM_TEXEL_BUFFER */, per_type},
	                      {5 /* STORAGE_TEXEL_BUFFER */, per_type}};
	pool_create_info ci = {33 /* DESCRIPTOR_POOL_CREATE_INFO */, NULL, 1 /* FREE_DESCRIPTOR_SET */, max_sets, 3, sizes};
	return fn(device, &ci, NULL, pool);
}

typedef struct {
	shim_handle buffer;
	uint64_t offset, range;
} buffer_info;

typedef struct {
	int32_t sType;
	const void *pNext;
	shim_handle dstSet;
	uint32_t dstBinding;
	uint32_t dstArrayElement;
	uint32_t descriptorCount;
	int32_t descriptorType;
	const void *pImageInfo;
	const buffer_info *pBufferInfo;
	const shim_handle *pTexelBufferView;
} write_set;

int shim_write_descriptor_set(shim_handle device, shim_handle set, uint32_t n, const int32_t *types,
                              const shim_handle *buffers, const uint64_t *offsets, const uint64_t *ranges,
                              const shim_handle *views) {
	void (*fn)(shim_handle, uint32_t, const write_set *, uint32_t, const void *) =
	    (void (*)(shim_handle, uint32_t, const write_set *, uint32_t, const void *))getDeviceProcAddr(device, "vkUpdateDescriptorSets");
	if (!fn || n > 16) return -1;
	write_set w[16];
	buffer_info bi[16];
	memset(w, 0, sizeof w);
	for (uint32_t i = 0; i < n; i++) {
		w[i].sType = 35; // WRITE_DESCRIPTOR_SET
		w[i].dstSet = set;
		w[i].dstBinding = i;
		w[i].descriptorCount = 1;
		w[i].descriptorType = types[i];
		if (types[i] == 7) {
			bi[i].buffer = buffers[i];
			bi[i].offset = offsets[i];
			bi[i].range = ranges[i];
			w[i].pBufferInfo = &bi[i];
		} else {
			w[i].pTexelBufferView = &views[i];
		}
	}
	fn(device, n, w, 0, NULL);
	return 0;
}

typedef struct {
	int32_t sType;
	const void *pNext;
	shim_handle memory;
	uint64_t offset, size;
} mapped_range;

int32_t shim_sync_mapped(shim_handle device, shim_handle memory, uint64_t offset, uint64_t size, int flush) {
	VkResult_ (*fn)(shim_handle, uint32_t, const mapped_range *) =
	    (VkResult_(*)(shim_handle, uint32_t, const mapped_range *))getDeviceProcAddr(
	        device, flush ? "vkFlushMappedMemoryRanges" : "vkInvalidateMappedMemoryRanges");
	if (!fn) return -3;
	mapped_range r = {6 /* MAPPED_MEMORY_RANGE */, NULL, memory, offset, size};
	return fn(device, 1, &r);
}
