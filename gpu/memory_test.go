package gpu_test

import (
	"math"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
)

// bigSize is just above half a 256 MiB block: such a request gets a
// dedicated block of its own, the kind that Free gives back to Vulkan.
const bigSize = 128<<20 + 4096

// bigAlloc allocates bigSize bytes from a, which the test releases at the end.
func bigAlloc(t *testing.T, a *gpu.Arena) *gpu.Buffer {
	t.Helper()
	b, err := a.Alloc(bigSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newArena returns an arena released when the test ends: its blocks hold
// only what the test allocates.
func newArena(t *testing.T, d *gpu.Device) *gpu.Arena {
	a := d.NewArena(t.Name())
	t.Cleanup(func() {
		if err := a.Release(); err != nil {
			t.Error(err)
		}
	})
	return a
}

// An intermediate with a dedicated block, freed in the middle of the
// recording that uses it (as autograd frees attention scores between the
// ops of one recording), must stay alive until the recording has run: its
// buffer and cached descriptor sets are referenced by the recorded
// commands. A second intermediate of the same size, allocated after the
// free in the same recording, reuses the retired block. Nothing may be left
// reserved once the work is done.
func TestFreeDedicatedBlockDuringRecording(t *testing.T) {
	d := gputest.Device(t)
	const n = 1000
	y := alloc(t, d, n)
	before, objs := d.MemoryStats(), d.ObjectCounts()

	a := newArena(t, d)
	r := d.NewRecorder(false)
	fill(t, r, d, y, n, 1)
	big := bigAlloc(t, a)
	fill(t, r, d, big, n, 3)
	axpy(t, r, d, y, big, n, 2) // y = 1 + 2·3, through texel views of big
	mid := d.MemoryStats()
	big.Free()
	if s := d.MemoryStats(); s.Reserved != mid.Reserved {
		t.Errorf("the freed block was given back while the recording uses it: reserved %d -> %d", mid.Reserved, s.Reserved)
	}
	big2 := bigAlloc(t, a)
	if s := d.MemoryStats(); s.Reserved != mid.Reserved {
		t.Errorf("the second intermediate did not reuse the retired block: reserved %d -> %d", mid.Reserved, s.Reserved)
	}
	fill(t, r, d, big2, n, 5)
	axpy(t, r, d, y, big2, n, 1) // y = 7 + 5
	big2.Free()
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	for i, v := range read(t, y, n) {
		if v != 12 {
			t.Fatalf("y[%d] = %v, want 12", i, v)
		}
	}
	if s, o := d.MemoryStats(), d.ObjectCounts(); s.Reserved != before.Reserved || s.Allocated != before.Allocated || o.Blocks != objs.Blocks {
		t.Errorf("memory left after the recording ran: %+v -> %+v, blocks %d -> %d", before, s, objs.Blocks, o.Blocks)
	}
}

// Freeing a dedicated block that submitted, unfinished work uses neither
// waits for the queue nor destroys the block under the work; the block goes
// when the work is found finished.
func TestFreeDedicatedBlockInFlight(t *testing.T) {
	d := gputest.Device(t)
	const n = 1000
	y := alloc(t, d, n)
	a := newArena(t, d)
	before := d.MemoryStats()
	big := bigAlloc(t, a)
	r := d.NewRecorder(false)
	fill(t, r, d, big, n, 2)
	fill(t, r, d, y, n, 0)
	axpy(t, r, d, y, big, n, 4)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	big.Free()
	// A recording that starts now may reuse the memory; the barrier at its
	// start orders it after the submitted work.
	big2 := bigAlloc(t, a)
	fill(t, r, d, big2, n, -1)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	big2.Free()
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, v := range read(t, y, n) {
		if v != 8 {
			t.Fatalf("y[%d] = %v, want 8", i, v)
		}
	}
	if s := d.MemoryStats(); s.Reserved != before.Reserved {
		t.Errorf("reserved %d after the work finished, %d before", s.Reserved, before.Reserved)
	}
}

// A recording that is given up on (Discard) releases the blocks freed
// while it was open, and a discarded recording runs nothing.
func TestDiscardReleasesRetiredBlocks(t *testing.T) {
	d := gputest.Device(t)
	const n = 256
	y := alloc(t, d, n)
	a := newArena(t, d)
	before := d.MemoryStats()
	r := d.NewRecorder(false)
	fill(t, r, d, y, n, 1)
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	big := bigAlloc(t, a)
	fill(t, r, d, big, n, 3)
	fill(t, r, d, y, n, 9)
	big.Free()
	if s := d.MemoryStats(); s.Reserved == before.Reserved {
		t.Fatalf("the freed block is gone while the recording still holds it: %+v %+v", before, s)
	}
	r.Discard()
	if s := d.MemoryStats(); s.Reserved != before.Reserved {
		t.Errorf("reserved %d after Discard, %d before", s.Reserved, before.Reserved)
	}
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	for i, v := range read(t, y, n) {
		if v != 1 {
			t.Fatalf("y[%d] = %v: the discarded recording ran", i, v)
		}
	}
}

// A buffer of a released arena is refused by recordings and transfers
// instead of reaching memory that is gone.
func TestReleasedArenaBuffersAreRefused(t *testing.T) {
	d := gputest.Device(t)
	a := d.NewArena("test")
	b, err := a.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := gpu.WriteSlice(b, 0, []float32{1}); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("write: %v", err)
	}
	p, err := d.Pipeline(fillK)
	if err != nil {
		t.Fatal(err)
	}
	r := d.NewRecorder(false)
	defer r.Discard()
	if err := r.Dispatch(p, groups(16), []uint32{16, math.Float32bits(1)}, b.Range(0, 64)); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("dispatch: %v", err)
	}
}

// The binding limit can be lowered (and restored) but not below what
// kernels need.
func TestSetMaxBindingBytes(t *testing.T) {
	d := gputest.Device(t)
	own := d.Info()
	for _, n := range []int64{-1, 1, 4095} {
		if _, err := d.SetMaxBindingBytes(n); err == nil {
			t.Errorf("limit %d accepted", n)
		}
	}
	prev, err := d.SetMaxBindingBytes(64 << 10)
	if err != nil || prev != 0 {
		t.Fatalf("set: previous %d, %v", prev, err)
	}
	if got := d.Info(); got.MaxStorageBufferRange != 64<<10 || got.MaxTexelBufferElements != min(own.MaxTexelBufferElements, 16<<10) {
		t.Errorf("limits in force: storage %d, texels %d", got.MaxStorageBufferRange, got.MaxTexelBufferElements)
	}
	if prev, err := d.SetMaxBindingBytes(0); err != nil || prev != 64<<10 {
		t.Fatalf("restore: previous %d, %v", prev, err)
	}
	if got := d.Info(); got.MaxStorageBufferRange != own.MaxStorageBufferRange || got.MaxTexelBufferElements != own.MaxTexelBufferElements {
		t.Errorf("limits not restored: %d, %d", got.MaxStorageBufferRange, got.MaxTexelBufferElements)
	}
}

// TestStagedTransfers runs the path every upload and readback takes on a
// discrete GPU, whose tensor memory the host cannot map: with staging
// forced, transfers larger than the (then small) staging buffer go in
// chunks, at unaligned offsets, and a dispatch between them sees what was
// uploaded and is seen by the readback. (The staged command buffers begin
// with a barrier that orders them after earlier submissions; lavapipe runs
// submissions in order and Debian 12's validation layer does not check
// hazards across submissions, so nothing here fails without it.)
func TestStagedTransfers(t *testing.T) {
	gputest.Device(t) // skip without a device
	o := gpu.OptionsFromEnv()
	o.ForceStaging = true
	d, err := gpu.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}()
	if !d.Info().StagedTransfers {
		t.Fatalf("ForceStaging: the device does not report staged transfers")
	}
	infos, err := gpu.Devices(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if !in.StagedTransfers {
			t.Errorf("Devices with ForceStaging: %s does not report staged transfers", in.Name)
		}
	}
	const n = 100_003 // 400 KB: seven chunks of the 64 KiB staging buffer
	x, y := alloc(t, d, n), alloc(t, d, n)
	xv := make([]float32, n)
	for i := range xv {
		xv[i] = float32(i%1000) - 500
	}
	if err := gpu.WriteSlice(x, 0, xv); err != nil {
		t.Fatal(err)
	}
	if err := gpu.WriteSlice(y, 0, make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	// An unaligned partial write across a chunk boundary.
	part := make([]float32, 20_001)
	for i := range part {
		part[i] = 7
	}
	if err := gpu.WriteSlice(x, 13_333, part); err != nil {
		t.Fatal(err)
	}
	for i := range part {
		xv[13_333+i] = 7
	}
	r := d.NewRecorder(false)
	axpy(t, r, d, y, x, n, 2) // y = 2x
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	got := read(t, y, n)
	for i := range got {
		if got[i] != 2*xv[i] {
			t.Fatalf("y[%d] = %v, want %v", i, got[i], 2*xv[i])
		}
	}
	// A readback at an unaligned offset.
	mid := make([]float32, 3)
	if err := gpu.ReadSlice(y, 65_535, mid); err != nil || mid[0] != 2*xv[65_535] || mid[2] != 2*xv[65_537] {
		t.Errorf("offset read: %v, %v", mid, err)
	}
}
