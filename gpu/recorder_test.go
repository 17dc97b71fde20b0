package gpu_test

import (
	"errors"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
)

var errInjected = errors.New("injected failure")

// A submission that cannot get a fence fails with that error and leaves
// nothing behind: its command buffer goes back for reuse and its query pool
// (a profiled recording has one) is destroyed.
func TestFenceFailureLeaksNothing(t *testing.T) {
	d := gputest.Device(t)
	const n = 64
	y := alloc(t, d, n)
	run := func(profile bool) error {
		r := d.NewRecorder(profile)
		fill(t, r, d, y, n, 1)
		return r.Run()
	}
	for i := 0; i < 3; i++ { // the free lists hold what a submission needs
		if err := run(true); err != nil {
			t.Fatal(err)
		}
	}
	before := d.ObjectCounts()
	restore := gpu.SetFaultForTest(func(step string) error {
		if step == "fence" {
			return errInjected
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if err := run(true); !errors.Is(err, errInjected) {
			restore()
			t.Fatalf("submission without a fence: %v", err)
		}
	}
	restore()
	if err := run(true); err != nil {
		t.Fatal(err)
	}
	if after := d.ObjectCounts(); after != before {
		t.Errorf("objects leaked by failed submissions: %+v -> %+v", before, after)
	}
}

// A command buffer that cannot be reset after its work finished is
// reported by the wait, and freed instead of reused.
func TestResetFailureIsReported(t *testing.T) {
	d := gputest.Device(t)
	const n = 64
	y := alloc(t, d, n)
	r := d.NewRecorder(false)
	fill(t, r, d, y, n, 2)
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	before := d.ObjectCounts()
	fill(t, r, d, y, n, 3)
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	restore := gpu.SetFaultForTest(func(step string) error {
		if step == "reset" {
			return errInjected
		}
		return nil
	})
	err := d.Wait()
	restore()
	if !errors.Is(err, errInjected) {
		t.Fatalf("wait after a failed reset: %v", err)
	}
	if got := read(t, y, n)[0]; got != 3 {
		t.Errorf("y = %v, want 3", got)
	}
	if after := d.ObjectCounts(); after.CommandBuffers != before.CommandBuffers-1 {
		t.Errorf("command buffers %d -> %d: the one that could not be reset was not freed", before.CommandBuffers, after.CommandBuffers)
	}
	fill(t, r, d, y, n, 4)
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, y, n)[0]; got != 4 {
		t.Errorf("y = %v, want 4", got)
	}
}
