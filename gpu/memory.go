package gpu

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// Memory layout: device memory is taken from Vulkan in large blocks, each
// with one VkBuffer spanning it; tensors are byte ranges of blocks. Kernels
// bind a range by (block buffer, offset, size), so a descriptor set stays
// valid as long as its block lives, and freeing a tensor never invalidates
// cached descriptor sets.
//
// Arenas own blocks. The device has a default arena; a replayable Program
// records with its own arena so that nothing allocated after capture can
// land in memory the program still writes.

const (
	// defaultBlockSize is the size of ordinary blocks; larger requests get a
	// dedicated block of their own.
	defaultBlockSize = 256 << 20
	// minAlign is the smallest offset alignment of ranges; device limits can
	// raise it. 256 keeps every binding aligned for all known devices.
	minAlign = 256
)

// span is a free byte range inside a block.
type span struct{ off, size int64 }

// block is one VkDeviceMemory with a VkBuffer over all of it.
type block struct {
	id        uint32
	arena     *Arena
	mem       vk.DeviceMemory
	buf       vk.Buffer
	size      int64
	mapped    unsafe.Pointer // host address of offset 0, nil if not mapped
	coherent  bool           // host coherent: mapped writes and reads need no flush or invalidate
	free      []span         // sorted by offset, coalesced
	used      int64
	dedicated bool
	pins      int // programs that reference this block
	views     map[viewKey]vk.BufferView

	// A block in use by work not yet finished outlives the buffers in it:
	// recs counts the open recordings and inflight the unfinished
	// submissions that use it. An empty dedicated block is retired (taken
	// out of its arena) and destroyed once both are 0 and no program pins
	// it; until then Alloc may take it back.
	recs, inflight int
	retired        bool
	dead           bool // destroyed, or its arena released: buffers in it are unusable
}

type viewKey struct {
	off, size int64
	format    vk.Format
}

// memory is the device-wide allocator state.
type memory struct {
	d           *Device
	typeIndex   uint32 // memory type for tensors
	hostVisible bool   // tensor blocks are mapped; false: transfers are staged
	// Staging (when tensor blocks are not mapped): uploads go through
	// upType, host visible and coherent; downloads through downType, host
	// cached where the device has such a type (reading write-combined
	// memory, NVIDIA's first host-visible type, is slow), else upType.
	upType, downType int
	stagingSize      int64
	align            int64
	blockSize        int64
	maxAlloc         int64
	usage            vk.BufferUsageFlags
	nextID           uint32
	def              *Arena
	arenas           map[*Arena]struct{}
	retired          []*block // see block.recs

	allocated, peak, reserved int64
}

// tensorMemoryType picks the memory type tensors live in: a device-local
// type; on unified-memory devices (lavapipe, integrated GPUs) it is also
// host visible, so no staging is needed. On discrete GPUs a small
// host-visible device-local heap (BAR) may exist; tensors belong in the big
// heap, so a type that is not host visible is preferred there. -1 when the
// device has no usable type.
func tensorMemoryType(info *DeviceInfo) int {
	best := -1
	for i, t := range info.MemoryTypes {
		if !t.DeviceLocal {
			continue
		}
		if best < 0 {
			best = i
		}
		if !info.UnifiedMemory() && !t.HostVisible && info.MemoryTypes[best].HostVisible {
			best = i
		}
	}
	if best < 0 {
		for i, t := range info.MemoryTypes {
			if t.HostVisible {
				return i
			}
		}
	}
	return best
}

// stagesTransfers reports whether reads and writes of tensors on the device
// go through staging copies: always when forced, else when the tensors'
// memory is not host visible.
func stagesTransfers(info *DeviceInfo, force bool) bool {
	t := tensorMemoryType(info)
	return force || (t >= 0 && !info.MemoryTypes[t].HostVisible)
}

// forcedStagingSize is the staging buffer's size when staging is forced
// (Options.ForceStaging): small, so that ordinary transfers take several
// chunks.
const forcedStagingSize = 64 << 10

func newMemory(d *Device, forceStaging bool) (*memory, error) {
	m := &memory{d: d, upType: -1, downType: -1, stagingSize: stagingSize, arenas: map[*Arena]struct{}{}}
	info := &d.info
	best := tensorMemoryType(info)
	if best < 0 {
		return nil, fmt.Errorf("gpu: %s has no usable memory type", info.Name)
	}
	m.typeIndex = uint32(best)
	m.hostVisible = info.MemoryTypes[best].HostVisible && !forceStaging
	if forceStaging {
		m.stagingSize = forcedStagingSize
	}
	if !m.hostVisible {
		for i, t := range info.MemoryTypes {
			if t.HostVisible && t.HostCoherent {
				m.upType = i
				break
			}
		}
		if m.upType < 0 {
			return nil, fmt.Errorf("gpu: %s has no host-visible coherent memory for uploads", info.Name)
		}
		m.downType = m.upType
		for i, t := range info.MemoryTypes {
			if t.HostVisible && t.HostCached {
				if !info.MemoryTypes[m.downType].HostCached || (t.HostCoherent && !info.MemoryTypes[m.downType].HostCoherent) {
					m.downType = i
				}
			}
		}
	}
	m.align = minAlign
	for _, a := range []uint64{info.MinStorageBufferAlign, info.MinTexelBufferAlign, info.NonCoherentAtomSize} {
		if int64(a) > m.align {
			m.align = int64(a)
		}
	}
	m.maxAlloc = int64(info.MaxMemoryAllocationSize)
	heap := int64(info.Heaps[info.MemoryTypes[best].Heap].Size)
	if m.maxAlloc == 0 || (heap > 0 && heap < m.maxAlloc) {
		m.maxAlloc = heap
	}
	if info.MaxBufferSize > 0 && int64(info.MaxBufferSize) < m.maxAlloc {
		m.maxAlloc = int64(info.MaxBufferSize)
	}
	m.blockSize = defaultBlockSize
	if m.maxAlloc > 0 && m.blockSize > m.maxAlloc {
		m.blockSize = m.maxAlloc
	}
	m.usage = vk.BufferUsageFlags(vk.BufferUsageStorageBufferBit | vk.BufferUsageUniformTexelBufferBit |
		vk.BufferUsageStorageTexelBufferBit | vk.BufferUsageTransferSrcBit | vk.BufferUsageTransferDstBit)
	m.def = &Arena{m: m, name: "default"}
	m.arenas[m.def] = struct{}{}
	return m, nil
}

// newBlock allocates device memory of size bytes (a multiple of align) of
// the given type; with mapIt it is mapped for the host (the type must be
// host visible).
func (m *memory) newBlock(a *Arena, size int64, dedicated bool, typeIndex uint32, mapIt bool) (*block, error) {
	d := m.d
	bci := vk.BufferCreateInfo{
		SType:       vk.StructureTypeBufferCreateInfo,
		Size:        vk.DeviceSize(size),
		Usage:       m.usage,
		SharingMode: vk.SharingModeExclusive,
	}
	var buf vk.Buffer
	res := vk.CreateBuffer(d.dev, &bci, nil, &buf)
	bci.Free()
	if res != vk.Success {
		return nil, fmt.Errorf("%w (block of %s)", vkError("vkCreateBuffer", res), FormatBytes(size))
	}
	var req vk.MemoryRequirements
	vk.GetBufferMemoryRequirements(d.dev, buf, &req)
	req.Deref()
	if req.MemoryTypeBits&(1<<typeIndex) == 0 {
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, fmt.Errorf("gpu: memory type %d cannot back storage buffers on %s", typeIndex, d.info.Name)
	}
	mai := vk.MemoryAllocateInfo{
		SType:           vk.StructureTypeMemoryAllocateInfo,
		AllocationSize:  req.Size,
		MemoryTypeIndex: typeIndex,
	}
	var mem vk.DeviceMemory
	res = vk.AllocateMemory(d.dev, &mai, nil, &mem)
	mai.Free()
	req.Free()
	if res != vk.Success {
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, fmt.Errorf("%w: allocating %s (%s in use, %s reserved)", vkError("vkAllocateMemory", res),
			FormatBytes(size), FormatBytes(m.allocated), FormatBytes(m.reserved))
	}
	if res := vk.BindBufferMemory(d.dev, buf, mem, 0); res != vk.Success {
		vk.FreeMemory(d.dev, mem, nil)
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, vkError("vkBindBufferMemory", res)
	}
	b := &block{arena: a, mem: mem, buf: buf, size: size, dedicated: dedicated,
		free: []span{{0, size}}, views: map[viewKey]vk.BufferView{}, coherent: d.info.MemoryTypes[typeIndex].HostCoherent}
	if mapIt {
		var p unsafe.Pointer
		if res := vk.MapMemory(d.dev, mem, 0, vk.DeviceSize(vk.WholeSize), 0, &p); res != vk.Success {
			m.destroyBlock(b)
			return nil, vkError("vkMapMemory", res)
		}
		b.mapped = p
	}
	m.nextID++
	b.id = m.nextID
	m.reserved += size
	return b, nil
}

// destroyBlock frees a block's descriptor sets, views and memory. Nothing
// recorded or in flight may use it any more.
func (m *memory) destroyBlock(b *block) {
	d := m.d
	b.dead = true
	if d.pipes != nil {
		d.pipes.forgetBlock(b)
	}
	for _, v := range b.views {
		vk.DestroyBufferView(d.dev, v, nil)
	}
	b.views = nil
	if b.mapped != nil {
		vk.UnmapMemory(d.dev, b.mem)
		b.mapped = nil
	}
	vk.DestroyBuffer(d.dev, b.buf, nil)
	vk.FreeMemory(d.dev, b.mem, nil)
	m.reserved -= b.size
}

func (m *memory) destroy() {
	for a := range m.arenas {
		for _, b := range a.blocks {
			m.destroyBlock(b)
		}
		a.blocks = nil
	}
	for _, b := range m.retired {
		m.destroyBlock(b)
	}
	m.retired = nil
}

// retire takes b out of its arena for good (an empty dedicated block, or
// any block of a released arena) and destroys it as soon as no recording,
// submission or program uses it. Freeing memory that an open recording or
// unfinished work still uses is normal (autograd frees intermediates in the
// middle of a recording): destroying the block at once would leave them
// with a dangling buffer and descriptor sets.
func (m *memory) retire(b *block) {
	if a := b.arena; a != nil {
		a.blocks = without(a.blocks, b)
	}
	b.retired = true
	m.retired = append(m.retired, b)
	m.maybeDestroy(b)
}

// maybeDestroy destroys a retired block that nothing uses any more.
func (m *memory) maybeDestroy(b *block) {
	if !b.retired || b.recs > 0 || b.inflight > 0 || b.pins > 0 {
		return
	}
	m.retired = without(m.retired, b)
	b.retired = false
	m.destroyBlock(b)
}

// without removes b from list, keeping the order.
func without(list []*block, b *block) []*block {
	if i := slices.Index(list, b); i >= 0 {
		return slices.Delete(list, i, i+1)
	}
	return list
}

// reuse takes back a retired dedicated block of arena a for a request of
// size bytes, when one is at least that large and at most twice as large:
// a model frees and allocates intermediates of the same sizes layer after
// layer, and the recorder orders the reuse as for any other memory.
func (m *memory) reuse(a *Arena, size int64) *block {
	var best *block
	for _, b := range m.retired {
		if b.arena != a || !b.dedicated || b.dead || b.pins > 0 || b.used != 0 || b.size < size || b.size > 2*size {
			continue
		}
		if best == nil || b.size < best.size {
			best = b
		}
	}
	if best == nil {
		return nil
	}
	m.retired = without(m.retired, best)
	best.retired = false
	a.blocks = append(a.blocks, best)
	return best
}

// waitable reports whether waiting for the queue would destroy a retired
// block (one that only unfinished submissions hold).
func (m *memory) waitable() bool {
	for _, b := range m.retired {
		if b.recs == 0 && b.pins == 0 && b.inflight > 0 {
			return true
		}
	}
	return false
}

// alloc carves size bytes (aligned) out of b, or returns -1.
func (b *block) alloc(size, align int64) int64 {
	for i, s := range b.free {
		off := (s.off + align - 1) / align * align
		if off+size > s.off+s.size {
			continue
		}
		// Split s into [s.off, off) and [off+size, end).
		end := s.off + s.size
		var repl []span
		if off > s.off {
			repl = append(repl, span{s.off, off - s.off})
		}
		if off+size < end {
			repl = append(repl, span{off + size, end - off - size})
		}
		b.free = append(b.free[:i], append(repl, b.free[i+1:]...)...)
		b.used += size
		return off
	}
	return -1
}

// release returns [off, off+size) to the free list and coalesces neighbours.
func (b *block) release(off, size int64) {
	i := sort.Search(len(b.free), func(i int) bool { return b.free[i].off > off })
	b.free = append(b.free, span{})
	copy(b.free[i+1:], b.free[i:])
	b.free[i] = span{off, size}
	// Merge with the next, then with the previous.
	if i+1 < len(b.free) && b.free[i].off+b.free[i].size == b.free[i+1].off {
		b.free[i].size += b.free[i+1].size
		b.free = append(b.free[:i+1], b.free[i+2:]...)
	}
	if i > 0 && b.free[i-1].off+b.free[i-1].size == b.free[i].off {
		b.free[i-1].size += b.free[i].size
		b.free = append(b.free[:i], b.free[i+1:]...)
	}
	b.used -= size
}

// Arena owns blocks of device memory and sub-allocates buffers from them.
// Freed buffers return to their arena. Release frees the arena's blocks.
type Arena struct {
	m        *memory
	name     string
	blocks   []*block
	released bool
}

// NewArena creates an arena; buffers allocated from it are returned to it
// when freed, and all its memory goes back to the device on Release.
func (d *Device) NewArena(name string) *Arena {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := &Arena{m: d.mem, name: name}
	d.mem.arenas[a] = struct{}{}
	return a
}

// Release frees all blocks of the arena. Buffers still allocated from it
// become unusable. Memory that recorded or unfinished work still uses is
// destroyed when that work is done (without waiting for it here).
func (a *Arena) Release() error {
	m := a.m
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if a.released || a == m.def {
		return nil
	}
	for _, b := range append([]*block(nil), a.blocks...) {
		if b.pins > 0 {
			// A live program still references it; keep it until unpinned.
			b.arena = m.def
			m.def.blocks = append(m.def.blocks, b)
			continue
		}
		m.allocated -= b.used
		b.dead = true
		m.retire(b)
	}
	a.blocks = nil
	a.released = true
	delete(m.arenas, a)
	if !d.closed {
		d.reapQuiet() // finished work may hold the arena's last blocks
	}
	return nil
}

// Buffer is a byte range of device memory. It is freed with Free; using it
// afterwards is an error reported by the operation that tries.
type Buffer struct {
	d     *Device
	blk   *block
	off   int64 // offset in the block
	size  int64 // requested size in bytes
	alloc int64 // reserved size (size rounded up)
	freed bool
}

// Alloc allocates size bytes of device memory from the default arena. The
// contents are undefined.
func (d *Device) Alloc(size int64) (*Buffer, error) { return d.mem.def.Alloc(size) }

// Alloc allocates size bytes from the arena. The contents are undefined.
func (a *Arena) Alloc(size int64) (*Buffer, error) {
	m := a.m
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errClosed
	}
	if a.released {
		return nil, fmt.Errorf("gpu: alloc from released arena %q", a.name)
	}
	if size <= 0 {
		return nil, fmt.Errorf("gpu: alloc of %d bytes", size)
	}
	// Round up to whole 16-byte texels so RGBA32F views can cover any buffer.
	rsize := (size + 15) &^ 15
	if m.maxAlloc > 0 && rsize > m.maxAlloc {
		return nil, fmt.Errorf("gpu: alloc of %s exceeds the largest allocation %s allows (%s)",
			FormatBytes(size), d.info.Name, FormatBytes(m.maxAlloc))
	}
	// Large requests always get a block of their own, so that their memory
	// goes back to Vulkan when they are freed; small ones never land in such
	// a block.
	dedicated := rsize > m.blockSize/2
	for _, b := range a.blocks {
		if dedicated || b.dedicated || b.size-b.used < rsize {
			continue
		}
		if off := b.alloc(rsize, m.align); off >= 0 {
			return m.track(&Buffer{d: d, blk: b, off: off, size: size, alloc: rsize}), nil
		}
	}
	bsize := m.blockSize
	if dedicated {
		bsize = (rsize + m.align - 1) / m.align * m.align
		if b := m.reuse(a, bsize); b != nil {
			off := b.alloc(rsize, m.align)
			return m.track(&Buffer{d: d, blk: b, off: off, size: size, alloc: rsize}), nil
		}
	}
	b, err := m.newBlock(a, bsize, dedicated, m.typeIndex, m.hostVisible)
	if err != nil && m.waitable() {
		// Retired blocks that only unfinished work holds go once it is
		// done; wait for it and try once more.
		if werr := d.waitLocked(); werr != nil {
			return nil, errors.Join(err, werr)
		}
		b, err = m.newBlock(a, bsize, dedicated, m.typeIndex, m.hostVisible)
	}
	if err != nil {
		return nil, err
	}
	a.blocks = append(a.blocks, b)
	off := b.alloc(rsize, m.align)
	return m.track(&Buffer{d: d, blk: b, off: off, size: size, alloc: rsize}), nil
}

func (m *memory) track(b *Buffer) *Buffer {
	m.allocated += b.alloc
	if m.allocated > m.peak {
		m.peak = m.allocated
	}
	return b
}

// Free returns the buffer's memory to its arena. Freeing twice is a no-op.
// Work already recorded or submitted may still use the buffer: memory freed
// and reused within a recording, or after a submission, is ordered by the
// recorder's barriers, and device memory given back to Vulkan (an empty
// dedicated block) goes once that work has finished. Free never waits.
func (b *Buffer) Free() {
	if b == nil {
		return
	}
	d := b.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if b.freed || d.closed {
		b.freed = true
		return
	}
	b.freed = true
	blk := b.blk
	if blk.arena == nil || blk.arena.released {
		return
	}
	m := d.mem
	m.allocated -= b.alloc
	blk.release(b.off, b.alloc)
	if blk.used == 0 && blk.dedicated {
		// Dedicated blocks are large: give them back as soon as the work
		// using them is done. Polling the fences here returns finished
		// work's memory without stalling the queue; an error it meets is
		// returned by the next wait.
		m.retire(blk)
		if blk.inflight > 0 {
			d.reapQuiet()
		}
	}
}

// reapQuiet finishes the signaled submissions for an operation whose
// error this is not (or that returns none); what finishing them meets is
// returned by the next wait. d.mu is held.
func (d *Device) reapQuiet() {
	if err := d.reapLocked(); err != nil {
		d.deferred = errors.Join(d.deferred, err)
	}
}

// Size is the buffer's size in bytes as requested.
func (b *Buffer) Size() int64 { return b.size }

// Device returns the device the buffer belongs to.
func (b *Buffer) Device() *Device { return b.d }

// Freed reports whether Free was called.
func (b *Buffer) Freed() bool { return b.freed }

func (b *Buffer) String() string {
	return fmt.Sprintf("buffer(%s @block%d+%d)", FormatBytes(b.size), b.blk.id, b.off)
}

// MemoryStats reports device memory use in bytes.
type MemoryStats struct {
	Allocated int64 // live buffers, rounded to their reserved size
	Peak      int64 // highest Allocated since Open or ResetPeak
	Reserved  int64 // device memory held in blocks
	Blocks    int   // blocks held, including freed ones that work in flight still uses
}

// MemoryStats returns current allocation figures.
func (d *Device) MemoryStats() MemoryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.mem.retired)
	for a := range d.mem.arenas {
		n += len(a.blocks)
	}
	return MemoryStats{Allocated: d.mem.allocated, Peak: d.mem.peak, Reserved: d.mem.reserved, Blocks: n}
}

// AllocLimits returns the largest buffer Alloc accepts and the size of the
// memory heap that buffers come from (0 where the device does not say), so
// that callers can refuse work that cannot fit before preparing it.
func (d *Device) AllocLimits() (largest, heap int64) {
	m := d.mem
	return m.maxAlloc, int64(d.info.Heaps[d.info.MemoryTypes[m.typeIndex].Heap].Size)
}

// ResetPeak sets the peak to the current allocation.
func (d *Device) ResetPeak() {
	d.mu.Lock()
	d.mem.peak = d.mem.allocated
	d.mu.Unlock()
}

// FormatBytes prints a byte count with a binary unit.
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
