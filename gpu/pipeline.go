package gpu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// BindingKind is how a shader sees one descriptor binding. Kernels declare
// their bindings in order (binding 0, 1, ...); the recorder uses the kinds to
// insert barriers, so they must tell the truth about writes.
type BindingKind uint8

const (
	// ReadOnly is a storage buffer the shader only reads.
	ReadOnly BindingKind = iota
	// ReadWrite is a storage buffer the shader writes (and may read).
	ReadWrite
	// TexelRGBA32F is a uniform texel buffer of vec4 texels, read with
	// texelFetch. On lavapipe these reads are several times faster than
	// storage-buffer loads.
	TexelRGBA32F
	// TexelR32F is a uniform texel buffer of float texels.
	TexelR32F
	// ImageRGBA32F is a storage texel buffer (imageBuffer, rgba32f) the
	// shader writes with imageStore.
	ImageRGBA32F
	// TexelRGBA16UI is a uniform texel buffer of four 16-bit unsigned
	// integers per texel (usamplerBuffer, R16G16B16A16_UINT): 16-bit
	// floating-point data (float16, bfloat16) that the shader widens itself,
	// so that neither 16-bit storage nor fp16 arithmetic is needed. Usable
	// where DeviceInfo.Texel16 is set.
	TexelRGBA16UI
	// TexelR16UI is a uniform texel buffer of one 16-bit unsigned integer
	// per texel (usamplerBuffer, R16_UINT).
	TexelR16UI
)

func (k BindingKind) writes() bool { return k == ReadWrite || k == ImageRGBA32F }
func (k BindingKind) texel() bool {
	return k == TexelRGBA32F || k == TexelR32F || k == ImageRGBA32F || k == TexelRGBA16UI || k == TexelR16UI
}

// uintTexels reports whether the shader reads the binding as unsigned
// integers (usamplerBuffer) rather than floats.
func (k BindingKind) uintTexels() bool { return k == TexelRGBA16UI || k == TexelR16UI }

func (k BindingKind) descriptorType() vk.DescriptorType {
	switch k {
	case TexelRGBA32F, TexelR32F, TexelRGBA16UI, TexelR16UI:
		return vk.DescriptorTypeUniformTexelBuffer
	case ImageRGBA32F:
		return vk.DescriptorTypeStorageTexelBuffer
	}
	return vk.DescriptorTypeStorageBuffer
}

func (k BindingKind) format() vk.Format {
	switch k {
	case TexelRGBA32F, ImageRGBA32F:
		return vk.FormatR32g32b32a32Sfloat
	case TexelR32F:
		return vk.FormatR32Sfloat
	case TexelRGBA16UI:
		return vk.FormatR16g16b16a16Uint
	case TexelR16UI:
		return vk.FormatR16Uint
	}
	return vk.FormatUndefined
}

func (k BindingKind) texelSize() int64 {
	switch k {
	case TexelRGBA32F, ImageRGBA32F:
		return 16
	case TexelRGBA16UI:
		return 8
	case TexelR16UI:
		return 2
	}
	return 4
}

// MaxBindings is the most descriptor bindings one kernel may declare.
const MaxBindings = 8

// Kernel describes a compute shader: its SPIR-V, its bindings and the size
// of its push constants. Kernels are declared once (package-level values)
// and turned into pipelines per device by Device.Pipeline.
type Kernel struct {
	Name      string
	SPIRV     []byte
	Bindings  []BindingKind
	PushWords int // push-constant block size in 32-bit words
}

// Pipeline is a compute pipeline: a kernel with fixed specialization
// constants, created once per device and cached.
type Pipeline struct {
	Kernel *Kernel
	Spec   []uint32
	label  string
	pipe   vk.Pipeline
	lay    *layout
}

// Label names the pipeline in profiles: the kernel name and its constants.
func (p *Pipeline) Label() string { return p.label }

// layout is a descriptor-set layout and pipeline layout shared by every
// kernel with the same bindings and push size, with its descriptor sets.
type layout struct {
	kinds     []BindingKind
	pushWords int
	setLayout vk.DescriptorSetLayout
	pipeLay   vk.PipelineLayout
	sets      map[setKey]cachedSet
}

type layoutKey struct {
	kinds     [MaxBindings]BindingKind
	n         int
	pushWords int
}

// setKey identifies the resources bound to a descriptor set.
type setKey struct {
	n     int
	items [MaxBindings]struct {
		blk       *block
		off, size int64
	}
}

type cachedSet struct {
	set  vk.DescriptorSet
	pool vk.DescriptorPool
}

type pipeKey struct {
	k    *Kernel
	n    int
	spec [16]uint32
}

// pipelineCache holds the device's pipelines, layouts, shader modules,
// descriptor pools and the VkPipelineCache persisted on disk.
type pipelineCache struct {
	d       *Device
	vkCache vk.PipelineCache
	path    string
	modules map[*Kernel]vk.ShaderModule
	pipes   map[pipeKey]*Pipeline
	layouts map[layoutKey]*layout
	pools   []vk.DescriptorPool
	nsets   int
}

const setsPerPool = 1024

// maxPipelineCache bounds the pipeline cache file read at start-up (the
// engine's pipelines take a few MiB on lavapipe).
const maxPipelineCache = 256 << 20

func newPipelineCache(d *Device, dir string) (*pipelineCache, error) {
	pc := &pipelineCache{d: d, modules: map[*Kernel]vk.ShaderModule{}, pipes: map[pipeKey]*Pipeline{},
		layouts: map[layoutKey]*layout{}}
	var initial []byte
	if dir != "off" {
		if dir == "" {
			if c, err := os.UserCacheDir(); err == nil {
				dir = filepath.Join(c, "shlpt-vk")
			}
		}
		if dir != "" {
			pc.path = pipelineCachePath(dir, &d.info)
			// A missing, unreadable or oversized cache only costs time: any
			// error means no cache.
			if b, err := limitio.ReadFile(pc.path, maxPipelineCache, "a pipeline cache"); err == nil {
				initial = b
			}
		}
	}
	ci := vk.PipelineCacheCreateInfo{SType: vk.StructureTypePipelineCacheCreateInfo}
	if len(initial) > 0 {
		ci.InitialDataSize = uint(len(initial))
		ci.PInitialData = unsafe.Pointer(&initial[0])
	}
	var cache vk.PipelineCache
	res := vk.CreatePipelineCache(d.dev, &ci, nil, &cache)
	ci.Free()
	if res != vk.Success && len(initial) > 0 {
		// Corrupt cache file: start empty.
		ci = vk.PipelineCacheCreateInfo{SType: vk.StructureTypePipelineCacheCreateInfo}
		res = vk.CreatePipelineCache(d.dev, &ci, nil, &cache)
		ci.Free()
	}
	if res != vk.Success {
		return nil, vkError("vkCreatePipelineCache", res)
	}
	pc.vkCache = cache
	return pc, nil
}

// pipelineCachePath is the cache file of the device in dir: one file per
// device and driver (the driver rejects foreign data anyway, but separate
// files keep two devices from evicting each other).
func pipelineCachePath(dir string, info *DeviceInfo) string {
	id := fmt.Sprintf("%s-%x-%x-%x", info.Name, info.VendorID, info.DeviceID, info.DriverVersion)
	h := sha256.Sum256([]byte(id))
	return filepath.Join(dir, "pipelines-"+hex.EncodeToString(h[:8])+".bin")
}

// save writes the pipeline cache to disk through a temporary file.
func (pc *pipelineCache) save() error {
	if pc == nil || pc.path == "" || pc.vkCache == nil {
		return nil
	}
	d := pc.d
	var n uint
	if res := vk.GetPipelineCacheData(d.dev, pc.vkCache, &n, nil); res != vk.Success || n == 0 {
		return nil
	}
	data := make([]byte, n)
	if res := vk.GetPipelineCacheData(d.dev, pc.vkCache, &n, unsafe.Pointer(&data[0])); res != vk.Success && res != vk.Incomplete {
		return nil
	}
	data = data[:n]
	if int64(len(data)) > maxPipelineCache {
		return nil // would not be read back
	}
	if old, err := limitio.ReadFile(pc.path, maxPipelineCache, "a pipeline cache"); err == nil && string(old) == string(data) {
		return nil
	}
	// The cache is an optimization: failing to write it is not an error of
	// the computation, so it is ignored.
	if err := os.MkdirAll(filepath.Dir(pc.path), 0o755); err != nil {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(pc.path), ".pipelines-*")
	if err != nil {
		return nil
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return nil
	}
	if err := os.Rename(tmp.Name(), pc.path); err != nil {
		os.Remove(tmp.Name())
	}
	return nil
}

func (pc *pipelineCache) destroy() {
	d := pc.d
	for _, p := range pc.pipes {
		vk.DestroyPipeline(d.dev, p.pipe, nil)
	}
	pc.pipes = nil
	for _, pool := range pc.pools {
		vk.DestroyDescriptorPool(d.dev, pool, nil) // frees its sets
	}
	pc.pools = nil
	for _, l := range pc.layouts {
		vk.DestroyPipelineLayout(d.dev, l.pipeLay, nil)
		vk.DestroyDescriptorSetLayout(d.dev, l.setLayout, nil)
	}
	pc.layouts = nil
	for _, m := range pc.modules {
		vk.DestroyShaderModule(d.dev, m, nil)
	}
	pc.modules = nil
	if pc.vkCache != nil {
		vk.DestroyPipelineCache(d.dev, pc.vkCache, nil)
		pc.vkCache = nil
	}
}

// Pipeline returns the pipeline of kernel k with specialization constants
// spec (constant_id 0, 1, ... in order), creating it on first use.
func (d *Device) Pipeline(k *Kernel, spec ...uint32) (*Pipeline, error) {
	if k == nil {
		return nil, fmt.Errorf("gpu: Pipeline of a nil kernel")
	}
	key := pipeKey{k: k, n: len(spec)}
	if len(spec) > len(key.spec) {
		return nil, fmt.Errorf("gpu: kernel %s: %d specialization constants, at most %d", k.Name, len(spec), len(key.spec))
	}
	copy(key.spec[:], spec)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errClosed
	}
	if p, ok := d.pipes.pipes[key]; ok {
		return p, nil
	}
	p, err := d.pipes.create(k, spec)
	if err != nil {
		return nil, err
	}
	if err := d.checkValidation("creating pipeline " + p.label); err != nil {
		return nil, err
	}
	d.pipes.pipes[key] = p
	return p, nil
}

func (pc *pipelineCache) create(k *Kernel, spec []uint32) (*Pipeline, error) {
	d := pc.d
	if len(k.Bindings) > MaxBindings {
		return nil, fmt.Errorf("gpu: kernel %s declares %d bindings, at most %d", k.Name, len(k.Bindings), MaxBindings)
	}
	if k.PushWords*4 > int(d.info.MaxPushConstantsSize) || k.PushWords > maxPushWords {
		return nil, fmt.Errorf("gpu: kernel %s needs %d bytes of push constants; %s allows %d",
			k.Name, k.PushWords*4, d.info.Name, d.info.MaxPushConstantsSize)
	}
	if len(k.SPIRV) == 0 || len(k.SPIRV)%4 != 0 {
		return nil, fmt.Errorf("gpu: kernel %s has no valid SPIR-V (%d bytes); run make spirv", k.Name, len(k.SPIRV))
	}
	mod, ok := pc.modules[k]
	if !ok {
		if err := checkShader(k); err != nil {
			return nil, err
		}
		if err := d.checkNeeds(k); err != nil {
			return nil, err
		}
		words := make([]uint32, len(k.SPIRV)/4)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(k.SPIRV)), k.SPIRV)
		ci := vk.ShaderModuleCreateInfo{SType: vk.StructureTypeShaderModuleCreateInfo,
			CodeSize: uint(len(k.SPIRV)), PCode: words}
		res := vk.CreateShaderModule(d.dev, &ci, nil, &mod)
		ci.Free()
		if res != vk.Success {
			return nil, fmt.Errorf("%w (kernel %s)", vkError("vkCreateShaderModule", res), k.Name)
		}
		pc.modules[k] = mod
	}
	lay, err := pc.layout(k.Bindings, k.PushWords)
	if err != nil {
		return nil, err
	}
	pipe, res := createComputePipeline(d.dev, pc.vkCache, mod, lay.pipeLay, spec)
	if res != vk.Success {
		return nil, fmt.Errorf("%w (kernel %s)", vkError("vkCreateComputePipelines", res), k.Name)
	}
	label := k.Name
	if len(spec) > 0 {
		label = fmt.Sprintf("%s%v", k.Name, spec)
	}
	return &Pipeline{Kernel: k, Spec: append([]uint32(nil), spec...), label: label, pipe: pipe, lay: lay}, nil
}

func (pc *pipelineCache) layout(kinds []BindingKind, pushWords int) (*layout, error) {
	key := layoutKey{n: len(kinds), pushWords: pushWords}
	copy(key.kinds[:], kinds)
	if l, ok := pc.layouts[key]; ok {
		return l, nil
	}
	d := pc.d
	l := &layout{kinds: append([]BindingKind(nil), kinds...), pushWords: pushWords, sets: map[setKey]cachedSet{}}
	setLayout, pipeLay, res := createLayouts(d.dev, kinds, 4*pushWords)
	if res != vk.Success {
		return nil, vkError("creating descriptor-set and pipeline layouts", res)
	}
	l.setLayout, l.pipeLay = setLayout, pipeLay
	pc.layouts[key] = l
	return l, nil
}

// descriptorSet returns a descriptor set of layout l bound to binds, reusing
// a cached one when the same ranges were bound before. d.mu is held.
func (pc *pipelineCache) descriptorSet(l *layout, binds []Binding) (vk.DescriptorSet, error) {
	var key setKey
	key.n = len(binds)
	for i, b := range binds {
		key.items[i].blk = b.Buf.blk
		key.items[i].off = b.Buf.off + b.Off
		key.items[i].size = b.Size
	}
	if s, ok := l.sets[key]; ok {
		return s.set, nil
	}
	d := pc.d
	var set vk.DescriptorSet
	var pool vk.DescriptorPool
	for try := 0; ; try++ {
		if len(pc.pools) == 0 || try > 0 {
			p, err := pc.newPool()
			if err != nil {
				return nil, err
			}
			pc.pools = append(pc.pools, p)
		}
		pool = pc.pools[len(pc.pools)-1]
		ai := vk.DescriptorSetAllocateInfo{SType: vk.StructureTypeDescriptorSetAllocateInfo,
			DescriptorPool: pool, DescriptorSetCount: 1, PSetLayouts: []vk.DescriptorSetLayout{l.setLayout}}
		res := vk.AllocateDescriptorSets(d.dev, &ai, &set)
		ai.Free()
		if res == vk.Success {
			break
		}
		if try > 0 || (res != vk.ErrorFragmentedPool && res != vk.Result(-1000069000)) {
			return nil, vkError("vkAllocateDescriptorSets", res)
		}
	}
	var writes [MaxBindings]descriptorWrite
	for i, b := range binds {
		k := l.kinds[i]
		w := descriptorWrite{kind: k, buf: b.Buf.blk.buf, off: b.Buf.off + b.Off, size: b.Size}
		if k.texel() {
			v, err := pc.view(b, k)
			if err != nil {
				return nil, err
			}
			w.view = v
		}
		writes[i] = w
	}
	writeDescriptorSet(d.dev, set, writes[:len(binds)])
	l.sets[key] = cachedSet{set: set, pool: pool}
	pc.nsets++
	return set, nil
}

func (pc *pipelineCache) newPool() (vk.DescriptorPool, error) {
	d := pc.d
	pool, res := createDescriptorPool(d.dev, setsPerPool, setsPerPool*MaxBindings)
	if res != vk.Success {
		return nil, vkError("vkCreateDescriptorPool", res)
	}
	return pool, nil
}

// view returns the texel-buffer view of a binding, cached on its block.
func (pc *pipelineCache) view(b Binding, k BindingKind) (vk.BufferView, error) {
	key := viewKey{off: b.Buf.off + b.Off, size: b.Size, format: k.format()}
	blk := b.Buf.blk
	if v, ok := blk.views[key]; ok {
		return v, nil
	}
	ci := vk.BufferViewCreateInfo{SType: vk.StructureTypeBufferViewCreateInfo, Buffer: blk.buf,
		Format: k.format(), Offset: vk.DeviceSize(key.off), Range: vk.DeviceSize(key.size)}
	var v vk.BufferView
	res := vk.CreateBufferView(pc.d.dev, &ci, nil, &v)
	ci.Free()
	if res != vk.Success {
		return nil, vkError("vkCreateBufferView", res)
	}
	blk.views[key] = v
	return v, nil
}

// forgetBlock drops descriptor sets that reference a block about to be
// destroyed. No open recording and no unfinished submission uses the block
// any more (see memory.retire), so none of its sets can still be bound.
func (pc *pipelineCache) forgetBlock(b *block) {
	d := pc.d
	for _, l := range pc.layouts {
		for key, s := range l.sets {
			for i := 0; i < key.n; i++ {
				if key.items[i].blk == b {
					set := s.set
					vk.FreeDescriptorSets(d.dev, s.pool, 1, &set)
					delete(l.sets, key)
					pc.nsets--
					break
				}
			}
		}
	}
}
