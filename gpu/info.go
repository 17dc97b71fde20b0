package gpu

import (
	"fmt"
	"strings"
)

// DeviceType is the kind of a physical device, in order of preference.
type DeviceType int

// Device types as Vulkan reports them.
const (
	TypeOther DeviceType = iota
	TypeIntegrated
	TypeDiscrete
	TypeVirtual
	TypeCPU
)

func (t DeviceType) String() string {
	switch t {
	case TypeIntegrated:
		return "integrated-gpu"
	case TypeDiscrete:
		return "discrete-gpu"
	case TypeVirtual:
		return "virtual-gpu"
	case TypeCPU:
		return "cpu"
	}
	return "other"
}

// rank orders device types for the default choice: discrete > integrated >
// virtual > CPU > other.
func (t DeviceType) rank() int {
	switch t {
	case TypeDiscrete:
		return 4
	case TypeIntegrated:
		return 3
	case TypeVirtual:
		return 2
	case TypeCPU:
		return 1
	}
	return 0
}

// SubgroupOps is VkSubgroupFeatureFlags.
type SubgroupOps uint32

// Subgroup operation bits.
const (
	SubgroupBasic           SubgroupOps = 0x01
	SubgroupVote            SubgroupOps = 0x02
	SubgroupArithmetic      SubgroupOps = 0x04
	SubgroupBallot          SubgroupOps = 0x08
	SubgroupShuffle         SubgroupOps = 0x10
	SubgroupShuffleRelative SubgroupOps = 0x20
	SubgroupClustered       SubgroupOps = 0x40
	SubgroupQuad            SubgroupOps = 0x80
)

// Names lists the supported operations, e.g. [basic vote arithmetic].
func (o SubgroupOps) Names() []string {
	names := []string{"basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad"}
	var out []string
	for i, n := range names {
		if o&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ComponentType is VkComponentTypeKHR (cooperative matrix element types).
type ComponentType uint32

func (c ComponentType) String() string {
	names := []string{"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"}
	if int(c) < len(names) {
		return names[c]
	}
	if c == 1000141000 {
		return "bf16"
	}
	return fmt.Sprintf("type%d", uint32(c))
}

// CoopMatShape is one supported cooperative-matrix multiply: an M×K by K×N
// product accumulated into M×N.
type CoopMatShape struct {
	M, N, K         uint32
	A, B, C, Result ComponentType
	Saturating      bool
	Scope           uint32 // 3 = subgroup
}

func (s CoopMatShape) String() string {
	return fmt.Sprintf("%dx%dx%d %s*%s+%s->%s", s.M, s.N, s.K, s.A, s.B, s.C, s.Result)
}

// MemoryHeap is one VkMemoryHeap.
type MemoryHeap struct {
	Size        uint64 `json:"size"`
	DeviceLocal bool   `json:"device_local"`
}

// MemoryType is one VkMemoryType.
type MemoryType struct {
	Heap         int  `json:"heap"`
	DeviceLocal  bool `json:"device_local"`
	HostVisible  bool `json:"host_visible"`
	HostCoherent bool `json:"host_coherent"`
	HostCached   bool `json:"host_cached"`
}

// DeviceInfo describes a physical device: what `shlpt-vk devices` prints and
// what kernels use to pick their variants. Nothing here is hard-coded; all of
// it is queried from the driver.
type DeviceInfo struct {
	Index         int        `json:"index"`
	Name          string     `json:"name"`
	Type          DeviceType `json:"-"`
	TypeName      string     `json:"type"`
	VendorID      uint32     `json:"vendor_id"`
	DeviceID      uint32     `json:"device_id"`
	APIVersion    uint32     `json:"-"`
	API           string     `json:"api_version"`
	DriverVersion uint32     `json:"-"`
	Driver        string     `json:"driver_version"`
	DriverName    string     `json:"driver_name"`
	DriverInfo    string     `json:"driver_info"`

	SubgroupSize        uint32      `json:"subgroup_size"`
	MinSubgroupSize     uint32      `json:"min_subgroup_size"`
	MaxSubgroupSize     uint32      `json:"max_subgroup_size"`
	SubgroupOps         SubgroupOps `json:"-"`
	SubgroupOpNames     []string    `json:"subgroup_ops"`
	SubgroupInCompute   bool        `json:"subgroup_in_compute"`
	SubgroupSizeControl bool        `json:"subgroup_size_control"`

	MaxSharedMemory         uint32    `json:"max_shared_memory"`
	MaxStorageBufferRange   uint32    `json:"max_storage_buffer_range"`
	MaxTexelBufferElements  uint32    `json:"max_texel_buffer_elements"`
	MaxPushConstantsSize    uint32    `json:"max_push_constants_size"`
	MaxWorkgroupInvocations uint32    `json:"max_workgroup_invocations"`
	MaxWorkgroupSize        [3]uint32 `json:"max_workgroup_size"`
	MaxWorkgroupCount       [3]uint32 `json:"max_workgroup_count"`
	MinStorageBufferAlign   uint64    `json:"min_storage_buffer_offset_alignment"`
	MinTexelBufferAlign     uint64    `json:"min_texel_buffer_offset_alignment"`
	NonCoherentAtomSize     uint64    `json:"non_coherent_atom_size"`
	MaxMemoryAllocationSize uint64    `json:"max_memory_allocation_size"`
	MaxBufferSize           uint64    `json:"max_buffer_size"`
	TimestampPeriod         float32   `json:"timestamp_period_ns"`

	Heaps       []MemoryHeap `json:"memory_heaps"`
	MemoryTypes []MemoryType `json:"memory_types"`

	Float16                 bool           `json:"shader_float16"`
	Int8                    bool           `json:"shader_int8"`
	StorageBuffer16Bit      bool           `json:"storage_buffer_16bit"`
	StorageBuffer8Bit       bool           `json:"storage_buffer_8bit"`
	BufferDeviceAddress     bool           `json:"buffer_device_address"`
	CooperativeMatrix       bool           `json:"cooperative_matrix"`
	CooperativeMatrixShapes []CoopMatShape `json:"-"`
	CoopMatShapeNames       []string       `json:"cooperative_matrix_shapes"`

	// StagedTransfers reports that reads and writes of tensors go through
	// staging copies (tensor memory is not mapped for the host): on
	// discrete GPUs, or everywhere with Options.ForceStaging.
	StagedTransfers bool `json:"staged_transfers"`

	// Texel16 reports that R16_UINT and R16G16B16A16_UINT buffers can be
	// read as uniform texel buffers (TexelR16UI, TexelRGBA16UI), as the
	// texel matrix product reads 16-bit weights.
	Texel16 bool `json:"texel_16bit"`

	// NotQueried lists the extensions whose properties and features were
	// not queried because an enabled layer (the validation layer) predates
	// them: what the device says about them is unknown, not absent.
	NotQueried []string `json:"not_queried,omitempty"`

	// ComputeQueueFamily is the queue family used for compute, or -1.
	ComputeQueueFamily int      `json:"compute_queue_family"`
	TimestampValidBits uint32   `json:"timestamp_valid_bits"`
	Extensions         []string `json:"-"`

	// Chosen marks the device Open would pick with the same options.
	Chosen bool `json:"chosen"`
}

// UnifiedMemory reports whether every device-local memory type is also host
// visible, as on CPU drivers and integrated GPUs, so buffers can be mapped
// directly instead of going through staging copies.
func (d *DeviceInfo) UnifiedMemory() bool {
	any := false
	for _, t := range d.MemoryTypes {
		if t.DeviceLocal {
			any = true
			if !t.HostVisible {
				return false
			}
		}
	}
	return any
}

// IsNVIDIA reports whether the device is an NVIDIA GPU.
func (d *DeviceInfo) IsNVIDIA() bool { return d.VendorID == 0x10de }

// IsLavapipe reports whether the device is Mesa's llvmpipe CPU driver.
func (d *DeviceInfo) IsLavapipe() bool {
	return d.Type == TypeCPU && strings.Contains(strings.ToLower(d.Name), "llvmpipe")
}

func (d *DeviceInfo) hasExtension(name string) bool {
	for _, e := range d.Extensions {
		if e == name {
			return true
		}
	}
	return false
}

// versionString decodes a VK_MAKE_API_VERSION value.
func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", (v>>22)&0x7f, (v>>12)&0x3ff, v&0xfff)
}

// driverVersionString decodes a driver version the way its vendor encodes it.
func driverVersionString(vendor, v uint32) string {
	if vendor == 0x10de { // NVIDIA: 10.8.8.6 bits
		return fmt.Sprintf("%d.%d.%d.%d", v>>22, (v>>14)&0xff, (v>>6)&0xff, v&0x3f)
	}
	return versionString(v)
}

func (d *DeviceInfo) finish() {
	d.TypeName = d.Type.String()
	d.API = versionString(d.APIVersion)
	d.Driver = driverVersionString(d.VendorID, d.DriverVersion)
	d.SubgroupOpNames = d.SubgroupOps.Names()
	d.CoopMatShapeNames = nil
	for _, s := range d.CooperativeMatrixShapes {
		d.CoopMatShapeNames = append(d.CoopMatShapeNames, s.String())
	}
}
