package gpu

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// Binding is a byte range of a buffer bound to one kernel binding.
type Binding struct {
	Buf       *Buffer
	Off, Size int64 // byte range within Buf
}

// All binds the whole buffer.
func (b *Buffer) All() Binding { return Binding{Buf: b, Size: b.size} }

// Range binds size bytes starting at byte offset off.
func (b *Buffer) Range(off, size int64) Binding { return Binding{Buf: b, Off: off, Size: size} }

// access is a byte range of a block touched by a recorded command.
type access struct {
	blk    *block
	lo, hi int64
}

func (a access) overlaps(b access) bool { return a.blk == b.blk && a.lo < b.hi && b.lo < a.hi }

// Recorder batches dispatches and transfers into one command buffer. It
// inserts a barrier before any command that reads what an earlier command
// wrote, or writes what an earlier command read or wrote, since the last
// barrier: the minimum needed for correct ordering, tracked by byte range so
// that reused memory is ordered too.
//
// The first error is kept; later calls do nothing and Submit returns it.
// A recording ends with Submit (or Run), Compile or Discard; until then the
// memory it uses stays allocated even if freed (see Buffer.Free).
type Recorder struct {
	d        *Device
	cmds     []cmd
	reads    []access
	writes   []access
	blocks   map[*block]struct{}
	labels   []string // per dispatch, for profiles
	profile  bool
	err      error
	barriers int
	timings  []Timing
}

// NewRecorder starts a recording. With profile set, a timestamp is written
// after every dispatch; Timings reports them after the work finished.
func (d *Device) NewRecorder(profile bool) *Recorder {
	r := &Recorder{d: d, blocks: map[*block]struct{}{}, profile: profile && d.info.TimestampValidBits > 0}
	r.start()
	return r
}

// Err returns the first error met while recording.
func (r *Recorder) Err() error { return r.err }

// Dispatches returns the number of dispatches recorded.
func (r *Recorder) Dispatches() int { return len(r.labels) }

// Barriers returns the number of barriers inserted so far.
func (r *Recorder) Barriers() int { return r.barriers }

func (r *Recorder) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// check validates a binding and returns its access range.
func (r *Recorder) check(what string, i int, b Binding, kind BindingKind) (access, error) {
	d := r.d
	if b.Buf == nil {
		return access{}, fmt.Errorf("gpu: %s: binding %d is nil", what, i)
	}
	if b.Buf.d != d {
		return access{}, fmt.Errorf("gpu: %s: binding %d belongs to device %q, not %q", what, i, b.Buf.d.info.Name, d.info.Name)
	}
	if b.Buf.freed {
		return access{}, fmt.Errorf("gpu: %s: binding %d uses %s after Free", what, i, b.Buf)
	}
	if b.Off < 0 || b.Size <= 0 || b.Off+b.Size > b.Buf.alloc {
		return access{}, fmt.Errorf("gpu: %s: binding %d range [%d,%d) is outside %s", what, i, b.Off, b.Off+b.Size, b.Buf)
	}
	if b.Buf.blk.dead {
		return access{}, fmt.Errorf("gpu: %s: binding %d uses %s, whose arena was released", what, i, b.Buf)
	}
	abs := b.Buf.off + b.Off
	maxStorage, maxTexels := d.bindingLimits()
	if kind.texel() {
		ts := kind.texelSize()
		if abs%int64(d.info.MinTexelBufferAlign) != 0 || b.Size%ts != 0 {
			return access{}, fmt.Errorf("gpu: %s: binding %d texel range (offset %d, %d bytes) must be aligned to %d and a multiple of %d bytes",
				what, i, abs, b.Size, d.info.MinTexelBufferAlign, ts)
		}
		if b.Size/ts > int64(maxTexels) {
			return access{}, fmt.Errorf("gpu: %s: binding %d has %d texels; %s allows %d (maxTexelBufferElements)",
				what, i, b.Size/ts, d.info.Name, maxTexels)
		}
	} else {
		if abs%int64(d.info.MinStorageBufferAlign) != 0 {
			return access{}, fmt.Errorf("gpu: %s: binding %d offset %d is not a multiple of minStorageBufferOffsetAlignment %d",
				what, i, abs, d.info.MinStorageBufferAlign)
		}
		if b.Size > int64(maxStorage) {
			return access{}, fmt.Errorf("gpu: %s: binding %d is %s; %s binds at most %s (maxStorageBufferRange): split it",
				what, i, FormatBytes(b.Size), d.info.Name, FormatBytes(int64(maxStorage)))
		}
	}
	return access{blk: b.Buf.blk, lo: abs, hi: abs + b.Size}, nil
}

// hazard inserts a barrier if the command's reads or writes conflict with
// what was recorded since the last barrier, then records the accesses.
func (r *Recorder) hazard(reads, writes []access) {
	conflict := false
	for _, w := range writes {
		for _, p := range r.writes {
			if w.overlaps(p) {
				conflict = true
			}
		}
		for _, p := range r.reads {
			if w.overlaps(p) {
				conflict = true
			}
		}
	}
	for _, rd := range reads {
		for _, p := range r.writes {
			if rd.overlaps(p) {
				conflict = true
			}
		}
	}
	if conflict {
		r.cmds = append(r.cmds, cmd{op: cmdBarrier})
		r.barriers++
		r.reads = r.reads[:0]
		r.writes = r.writes[:0]
	}
	r.reads = append(r.reads, reads...)
	r.writes = append(r.writes, writes...)
}

// use registers the blocks a command touches as used by this recording, so
// that freeing their memory meanwhile does not destroy them (see
// memory.retire). d.mu is held.
func (r *Recorder) use(accs ...[]access) {
	for _, as := range accs {
		for _, a := range as {
			if _, ok := r.blocks[a.blk]; !ok {
				r.blocks[a.blk] = struct{}{}
				a.blk.recs++
			}
		}
	}
}

// lockUse registers the blocks of a command under the device lock.
func (r *Recorder) lockUse(accs ...[]access) error {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	r.use(accs...)
	return nil
}

// dropBlocksLocked ends this recording's use of its blocks; those freed in
// the meantime are destroyed when nothing else uses them. d.mu is held.
func (r *Recorder) dropBlocksLocked() {
	for b := range r.blocks {
		b.recs--
		r.d.mem.maybeDestroy(b)
	}
	clear(r.blocks)
}

// Dispatch records p with groups workgroups, push constants push (at most
// the kernel's PushWords) and one binding per kernel binding.
func (r *Recorder) Dispatch(p *Pipeline, groups [3]uint32, push []uint32, binds ...Binding) error {
	if r.err != nil {
		return r.err
	}
	k := p.Kernel
	if len(binds) != len(k.Bindings) {
		return r.fail(fmt.Errorf("gpu: %s: %d bindings given, kernel has %d", k.Name, len(binds), len(k.Bindings)))
	}
	if len(push) > k.PushWords {
		return r.fail(fmt.Errorf("gpu: %s: %d push words given, kernel has %d", k.Name, len(push), k.PushWords))
	}
	for i, g := range groups {
		if g == 0 {
			return nil // empty work: nothing to record
		}
		if g > r.d.info.MaxWorkgroupCount[i] {
			return r.fail(fmt.Errorf("gpu: %s: %d workgroups in dimension %d; %s allows %d",
				k.Name, g, i, r.d.info.Name, r.d.info.MaxWorkgroupCount[i]))
		}
	}
	var readsArr, writesArr [MaxBindings]access
	reads, writes := readsArr[:0], writesArr[:0]
	for i, b := range binds {
		a, err := r.check(k.Name, i, b, k.Bindings[i])
		if err != nil {
			return r.fail(err)
		}
		if k.Bindings[i].writes() {
			writes = append(writes, a)
		} else {
			reads = append(reads, a)
		}
	}
	d := r.d
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return r.fail(errClosed)
	}
	set, err := d.pipes.descriptorSet(p.lay, binds)
	if err == nil {
		r.use(reads, writes)
	}
	d.mu.Unlock()
	if err != nil {
		return r.fail(fmt.Errorf("%w (kernel %s)", err, k.Name))
	}
	r.hazard(reads, writes)
	c := cmd{op: cmdDispatch, x: cU32(groups[0]), y: cU32(groups[1]), z: cU32(groups[2]),
		pipeline: handle(unsafe.Pointer(p.pipe)), layout: handle(unsafe.Pointer(p.lay.pipeLay)), set: handle(unsafe.Pointer(set)), push_words: cU32(uint32(k.PushWords))}
	for i, w := range push {
		c.push[i] = cU32(w)
	}
	r.cmds = append(r.cmds, c)
	r.labels = append(r.labels, p.label)
	if r.profile {
		r.cmds = append(r.cmds, cmd{op: cmdTimestamp, x: cU32(uint32(len(r.labels)))})
	}
	return nil
}

// Fill sets every 32-bit word of the binding to value (size must be a
// multiple of 4).
func (r *Recorder) Fill(b Binding, value uint32) error {
	if r.err != nil {
		return r.err
	}
	a, err := r.check("fill", 0, b, ReadWrite)
	if err != nil {
		return r.fail(err)
	}
	if b.Size%4 != 0 || (b.Buf.off+b.Off)%4 != 0 {
		return r.fail(fmt.Errorf("gpu: fill: range (offset %d, %d bytes) must be 4-byte aligned", b.Off, b.Size))
	}
	if err := r.lockUse([]access{a}); err != nil {
		return r.fail(err)
	}
	r.hazard(nil, []access{a})
	r.cmds = append(r.cmds, cmd{op: cmdFill, buf: handle(unsafe.Pointer(b.Buf.blk.buf)), off: cUint64(a.lo), size: cUint64(b.Size), x: cU32(value)})
	return nil
}

// Copy copies src to dst; both ranges must have the same size.
func (r *Recorder) Copy(dst, src Binding) error {
	if r.err != nil {
		return r.err
	}
	if dst.Size != src.Size {
		return r.fail(fmt.Errorf("gpu: copy: %d bytes into %d", src.Size, dst.Size))
	}
	ra, err := r.check("copy", 1, src, ReadOnly)
	if err != nil {
		return r.fail(err)
	}
	wa, err := r.check("copy", 0, dst, ReadWrite)
	if err != nil {
		return r.fail(err)
	}
	if ra.overlaps(wa) {
		return r.fail(fmt.Errorf("gpu: copy: source and destination overlap"))
	}
	if err := r.lockUse([]access{ra}, []access{wa}); err != nil {
		return r.fail(err)
	}
	r.hazard([]access{ra}, []access{wa})
	r.cmds = append(r.cmds, cmd{op: cmdCopy, buf: handle(unsafe.Pointer(src.Buf.blk.buf)), off: cUint64(ra.lo),
		buf2: handle(unsafe.Pointer(dst.Buf.blk.buf)), off2: cUint64(wa.lo), size: cUint64(src.Size)})
	return nil
}

// Submit sends the recording to the queue and returns without waiting.
// Reads of buffers (and Device.Wait) wait for it. The recorder can be
// reused afterwards for a new recording.
func (r *Recorder) Submit() error {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	defer r.reset()
	if r.err != nil {
		err := r.err
		r.dropBlocksLocked()
		return err
	}
	cmds := append(r.cmds, cmd{op: cmdHostBarrier})
	s, err := d.submitLocked(cmds, r, r.blocks)
	if s != nil && r.profile {
		s.labels = r.labels
	}
	r.dropBlocksLocked()
	return err
}

// Discard drops what was recorded without running it; the recorder can be
// used for a new recording. A recording that is given up on must be
// discarded (or submitted, or compiled): until then the memory freed while
// it was open stays reserved, since the recording may still use it.
func (r *Recorder) Discard() {
	d := r.d
	d.mu.Lock()
	if !d.closed {
		r.dropBlocksLocked()
	}
	d.mu.Unlock()
	r.reset()
}

// Run submits the recording and waits for it to finish.
func (r *Recorder) Run() error {
	if err := r.Submit(); err != nil {
		return err
	}
	return r.d.Wait()
}

func (r *Recorder) reset() {
	r.cmds = r.cmds[:0]
	r.reads = r.reads[:0]
	r.writes = r.writes[:0]
	r.labels = nil
	r.blocks = map[*block]struct{}{}
	r.err = nil
	r.barriers = 0
	r.start()
}

// start begins a command buffer with a barrier: work submitted earlier on
// the queue may still be running, and this recording may read what it
// wrote (or reuse its memory).
func (r *Recorder) start() {
	r.cmds = append(r.cmds, cmd{op: cmdBarrier})
	if r.profile {
		r.cmds = append(r.cmds, cmd{op: cmdResetQueries}, cmd{op: cmdTimestamp})
	}
}

// Timing is the device time of one dispatch.
type Timing struct {
	Label string
	Time  time.Duration
}

// Timings returns the per-dispatch times of the last profiled submission
// that finished.
func (r *Recorder) Timings() []Timing { return r.timings }

// submission is a command buffer in flight.
type submission struct {
	cb     vk.CommandBuffer
	fence  vk.Fence
	pool   vk.QueryPool
	nq     int
	labels []string
	rec    *Recorder // receives timings, may be nil
	prog   *Program  // replayed program (its command buffer is not recycled)
	blocks []*block  // memory the command buffer uses, kept alive until it finishes
}

func (d *Device) getCmd() (vk.CommandBuffer, error) {
	if n := len(d.freeCmds); n > 0 {
		cb := d.freeCmds[n-1]
		d.freeCmds = d.freeCmds[:n-1]
		return cb, nil
	}
	ai := vk.CommandBufferAllocateInfo{SType: vk.StructureTypeCommandBufferAllocateInfo,
		CommandPool: d.cmdPool, Level: vk.CommandBufferLevelPrimary, CommandBufferCount: 1}
	cbs := make([]vk.CommandBuffer, 1)
	res := vk.AllocateCommandBuffers(d.dev, &ai, cbs)
	ai.Free()
	if res != vk.Success {
		return nil, vkError("vkAllocateCommandBuffers", res)
	}
	d.objects.CommandBuffers++
	return cbs[0], nil
}

// faultHook, when set (by tests), makes the named step fail with the error
// it returns: "fence" (getting a fence) or "reset" (resetting a command
// buffer).
var faultHook func(step string) error

func fault(step string) error {
	if faultHook == nil {
		return nil
	}
	return faultHook(step)
}

func (d *Device) getFence() (vk.Fence, error) {
	if err := fault("fence"); err != nil {
		return nil, err
	}
	if n := len(d.freeFences); n > 0 {
		f := d.freeFences[n-1]
		d.freeFences = d.freeFences[:n-1]
		return f, nil
	}
	ci := vk.FenceCreateInfo{SType: vk.StructureTypeFenceCreateInfo}
	var f vk.Fence
	res := vk.CreateFence(d.dev, &ci, nil, &f)
	ci.Free()
	if res != vk.Success {
		return nil, vkError("vkCreateFence", res)
	}
	d.objects.Fences++
	return f, nil
}

func (d *Device) newQueryPool(n int) (vk.QueryPool, error) {
	ci := vk.QueryPoolCreateInfo{SType: vk.StructureTypeQueryPoolCreateInfo,
		QueryType: vk.QueryTypeTimestamp, QueryCount: uint32(n)}
	var p vk.QueryPool
	res := vk.CreateQueryPool(d.dev, &ci, nil, &p)
	ci.Free()
	if res != vk.Success {
		return nil, vkError("vkCreateQueryPool", res)
	}
	d.objects.QueryPools++
	return p, nil
}

// encode records cmds into cb, creating a query pool when they hold
// timestamps. It returns the pool and the number of queries.
func (d *Device) encode(cb vk.CommandBuffer, cmds []cmd, oneTime bool) (vk.QueryPool, int, error) {
	nq := 0
	for i := range cmds {
		if cmds[i].op == cmdTimestamp {
			nq++
		}
	}
	var pool vk.QueryPool
	if nq > 0 {
		p, err := d.newQueryPool(nq)
		if err != nil {
			return nil, 0, err
		}
		pool = p
		for i := range cmds {
			switch cmds[i].op {
			case cmdTimestamp:
				cmds[i].buf = handle(unsafe.Pointer(pool))
			case cmdResetQueries:
				cmds[i].buf = handle(unsafe.Pointer(pool))
				cmds[i].x = cU32(uint32(nq))
			}
		}
	}
	if err := beginCommandBuffer(d.fns, cb, oneTime); err != nil {
		return pool, nq, err
	}
	record(d.fns, cb, cmds)
	if err := endCommandBuffer(d.fns, cb); err != nil {
		return pool, nq, err
	}
	return pool, nq, nil
}

// submitLocked records and submits a one-time command buffer that uses the
// memory of blocks. d.mu is held.
func (d *Device) submitLocked(cmds []cmd, rec *Recorder, blocks map[*block]struct{}) (*submission, error) {
	// Finished work gives its objects (and retired memory) back first; an
	// error of that work is the next wait's to return, not this submit's.
	d.reapQuiet()
	// The fence first: nothing else needs undoing when it cannot be had.
	fence, err := d.getFence()
	if err != nil {
		return nil, err
	}
	cb, err := d.getCmd()
	if err != nil {
		d.freeFences = append(d.freeFences, fence)
		return nil, err
	}
	s := &submission{cb: cb, fence: fence, rec: rec}
	s.pool, s.nq, err = d.encode(cb, cmds, true)
	if err == nil {
		err = submit(d.fns, d.q, cb, fence)
	}
	if err != nil {
		// Never submitted: the fence is unsignaled and the command buffer
		// goes back after a reset.
		return nil, errors.Join(err, d.recycle(s))
	}
	for b := range blocks {
		b.inflight++
		s.blocks = append(s.blocks, b)
	}
	d.inflight = append(d.inflight, s)
	if err := d.checkValidation("recording and submitting"); err != nil {
		return s, err
	}
	return s, nil
}

// recycle returns a finished (or never submitted) submission's objects to
// the free lists and ends its use of memory. A command buffer that cannot be
// reset is freed instead of reused.
func (d *Device) recycle(s *submission) error {
	var err error
	if s.prog == nil {
		if err = resetCommandBuffer(d.fns, s.cb); err != nil {
			d.freeCommandBuffer(s.cb)
		} else {
			d.freeCmds = append(d.freeCmds, s.cb)
		}
		if s.pool != nil {
			vk.DestroyQueryPool(d.dev, s.pool, nil)
			d.objects.QueryPools--
		}
	}
	d.freeFences = append(d.freeFences, s.fence)
	for _, b := range s.blocks {
		b.inflight--
		d.mem.maybeDestroy(b)
	}
	s.blocks = nil
	return err
}

// freeCommandBuffer gives a command buffer back to the pool.
func (d *Device) freeCommandBuffer(cb vk.CommandBuffer) {
	vk.FreeCommandBuffers(d.dev, d.cmdPool, 1, []vk.CommandBuffer{cb})
	d.objects.CommandBuffers--
}

// Wait blocks until all submitted work has finished.
func (d *Device) Wait() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	return d.waitLocked()
}

// waitTimeout bounds a single wait so that a hung device becomes an error.
const waitTimeout = uint64(10 * time.Minute)

func (d *Device) waitLocked() error {
	var first error
	for _, s := range d.inflight {
		if err := waitFence(d.fns, d.dev, s.fence, waitTimeout); err != nil && first == nil {
			first = err
		}
		if err := d.finish(s); err != nil && first == nil {
			first = err
		}
	}
	d.inflight = d.inflight[:0]
	if d.deferred != nil {
		first = errors.Join(first, d.deferred)
		d.deferred = nil
	}
	if err := d.checkValidation("executing submitted work"); err != nil && first == nil {
		first = err
	}
	return first
}

// reapLocked finishes the submissions whose fences have signaled, without
// waiting for the others, and returns the first error of finishing them. A
// fence that cannot be queried stays in flight: Wait meets (and returns)
// its error. d.mu is held.
func (d *Device) reapLocked() error {
	var first error
	keep := d.inflight[:0]
	for _, s := range d.inflight {
		done, err := fenceSignaled(d.fns, d.dev, s.fence)
		if err == nil && done {
			// Signaled: this wait returns at once and resets the fence.
			err = waitFence(d.fns, d.dev, s.fence, 0)
		}
		if err != nil || !done {
			keep = append(keep, s)
			continue
		}
		if err := d.finish(s); err != nil && first == nil {
			first = err
		}
	}
	clear(d.inflight[len(keep):])
	d.inflight = keep
	return first
}

// finish collects a finished submission's timings and recycles it.
func (d *Device) finish(s *submission) error {
	var first error
	if s.nq > 0 && (s.rec != nil || s.prog != nil) {
		t, err := d.readTimings(s)
		first = err
		if s.rec != nil {
			s.rec.timings = t
		}
		if s.prog != nil {
			s.prog.timings = t
		}
	}
	if s.prog != nil {
		s.prog.running = false
	}
	if err := d.recycle(s); err != nil && first == nil {
		first = err
	}
	return first
}

func (d *Device) readTimings(s *submission) ([]Timing, error) {
	ts := make([]uint64, s.nq)
	res := vk.GetQueryPoolResults(d.dev, s.pool, 0, uint32(s.nq), uint(8*s.nq), ptrOf(ts), 8,
		vk.QueryResultFlags(vk.QueryResult64Bit|vk.QueryResultWaitBit))
	if res != vk.Success {
		return nil, vkError("vkGetQueryPoolResults", res)
	}
	labels := s.labels
	if s.prog != nil {
		labels = s.prog.labels
	}
	period := float64(d.info.TimestampPeriod)
	mask := ^uint64(0)
	if b := d.info.TimestampValidBits; b > 0 && b < 64 {
		mask = (uint64(1) << b) - 1
	}
	out := make([]Timing, 0, len(labels))
	for i := 1; i < s.nq && i-1 < len(labels); i++ {
		dt := (ts[i] - ts[i-1]) & mask
		out = append(out, Timing{Label: labels[i-1], Time: time.Duration(float64(dt) * period)})
	}
	return out, nil
}

// Program is a recorded command buffer that can be replayed: a training
// step with fixed shapes records once and then runs many times at no
// recording cost. It references the memory it uses, which stays valid until
// Release. Data changes between runs go through buffer writes.
type Program struct {
	d        *Device
	cb       vk.CommandBuffer
	fence    vk.Fence
	pool     vk.QueryPool
	nq       int
	labels   []string
	blocks   []*block
	running  bool
	released bool
	timings  []Timing
	n        int // dispatches
	barriers int // pipeline barriers between commands, the one that begins the program included
}

// Compile turns the recording into a replayable Program (without running
// it). The recorder is reset.
func (r *Recorder) Compile() (*Program, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errClosed
	}
	defer r.reset()
	if r.err != nil {
		r.dropBlocksLocked()
		return nil, r.err
	}
	defer r.dropBlocksLocked()
	cb, err := d.getCmd()
	if err != nil {
		return nil, err
	}
	cmds := append(r.cmds, cmd{op: cmdHostBarrier})
	pool, nq, err := d.encode(cb, cmds, false)
	if err != nil {
		if pool != nil {
			vk.DestroyQueryPool(d.dev, pool, nil)
			d.objects.QueryPools--
		}
		if rerr := resetCommandBuffer(d.fns, cb); rerr != nil {
			d.freeCommandBuffer(cb)
			return nil, errors.Join(err, rerr)
		}
		d.freeCmds = append(d.freeCmds, cb)
		return nil, err
	}
	p := &Program{d: d, cb: cb, pool: pool, nq: nq, labels: r.labels, n: len(r.labels)}
	for i := range cmds {
		if cmds[i].op == cmdBarrier {
			p.barriers++
		}
	}
	d.programs[p] = struct{}{}
	for b := range r.blocks {
		b.pins++
		p.blocks = append(p.blocks, b)
	}
	if err := d.checkValidation("recording a program"); err != nil {
		return p, err
	}
	return p, nil
}

// Dispatches returns the number of dispatches in the program.
func (p *Program) Dispatches() int { return p.n }

// Barriers returns the number of pipeline barriers in the program: the one
// that begins it (ordering it after earlier work) and one before every
// command that touches memory an earlier command since the last barrier
// wrote, or writes memory it read. Each is a full compute-to-compute memory
// barrier, so on a GPU it drains the queue's running dispatches.
func (p *Program) Barriers() int { return p.barriers }

// Run submits the program without waiting; a previous run of the same
// program is waited for first.
func (p *Program) Run() error {
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	if p.released {
		return fmt.Errorf("gpu: Run of a released program")
	}
	if p.running {
		if err := d.waitLocked(); err != nil {
			return err
		}
	}
	fence, err := d.getFence()
	if err != nil {
		return err
	}
	s := &submission{cb: p.cb, fence: fence, pool: p.pool, nq: p.nq, prog: p}
	if err := submit(d.fns, d.q, p.cb, fence); err != nil {
		d.freeFences = append(d.freeFences, fence)
		return err
	}
	p.running = true
	d.inflight = append(d.inflight, s)
	return d.checkValidation("running a program")
}

// Timings returns per-dispatch times of the last finished run of a program
// recorded with profiling.
func (p *Program) Timings() []Timing { return p.timings }

// Release frees the program's command buffer and unpins its memory.
func (p *Program) Release() error {
	d := p.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.released || d.closed {
		p.released = true
		return nil
	}
	err := d.waitLocked()
	p.released = true
	delete(d.programs, p)
	if rerr := resetCommandBuffer(d.fns, p.cb); rerr != nil {
		d.freeCommandBuffer(p.cb)
		err = errors.Join(err, rerr)
	} else {
		d.freeCmds = append(d.freeCmds, p.cb)
	}
	if p.pool != nil {
		vk.DestroyQueryPool(d.dev, p.pool, nil)
		d.objects.QueryPools--
	}
	for _, b := range p.blocks {
		b.pins--
		d.mem.maybeDestroy(b)
	}
	p.blocks = nil
	return err
}
