package gpu_test

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/envflag"
	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shaders"
)

func TestMain(m *testing.M) { gputest.Main(m) }

// Test kernels built straight from the shader files, so that the gpu
// package is tested without the kernels package above it.
var (
	fillK = &gpu.Kernel{Name: "fill", SPIRV: shaders.SPIRV("fill"), Bindings: []gpu.BindingKind{gpu.ReadWrite}, PushWords: 3}
	axpyK = &gpu.Kernel{Name: "axpy", SPIRV: shaders.SPIRV("axpy"),
		Bindings: []gpu.BindingKind{gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite}, PushWords: 5}
)

func groups(n int) [3]uint32 { return [3]uint32{uint32((n + 255) / 256), 1, 1} }

func fill(t *testing.T, r *gpu.Recorder, d *gpu.Device, b *gpu.Buffer, n int, v float32) {
	t.Helper()
	p, err := d.Pipeline(fillK)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Dispatch(p, groups(n), []uint32{uint32(n), math.Float32bits(v)}, b.Range(0, int64(4*n))); err != nil {
		t.Fatal(err)
	}
}

func axpy(t *testing.T, r *gpu.Recorder, d *gpu.Device, y, x *gpu.Buffer, n int, a float32) {
	t.Helper()
	p, err := d.Pipeline(axpyK)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Dispatch(p, groups(n), []uint32{uint32(n), math.Float32bits(a), 0, 0, 0},
		x.Range(0, int64(4*n)), y.Range(0, int64(4*n)), y.Range(0, int64(4*n))); err != nil {
		t.Fatal(err)
	}
}

func alloc(t *testing.T, d *gpu.Device, n int) *gpu.Buffer {
	t.Helper()
	b, err := d.Alloc(int64(4 * n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	return b
}

func read(t *testing.T, b *gpu.Buffer, n int) []float32 {
	t.Helper()
	out := make([]float32, n)
	if err := gpu.ReadSlice(b, 0, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeviceInfo(t *testing.T) {
	d := gputest.Device(t)
	info := d.Info()
	t.Logf("device: %s (%s), API %s, driver %s %s, subgroup %d, shared %d, storage range %d",
		info.Name, info.TypeName, info.API, info.DriverName, info.Driver, info.SubgroupSize,
		info.MaxSharedMemory, info.MaxStorageBufferRange)
	if info.SubgroupSize == 0 || info.MaxSharedMemory == 0 || info.MaxStorageBufferRange == 0 {
		t.Errorf("properties not queried: %+v", info)
	}
	if !info.Chosen {
		t.Errorf("the opened device is not marked chosen")
	}
	if info.IsLavapipe() {
		// Values this project relies on when it runs on lavapipe: 8-lane
		// subgroups with 256-bit vectors (LP_NATIVE_VECTOR_WIDTH changes
		// the width, and the subgroup size with it).
		sg := uint32(8)
		if w, err := strconv.Atoi(os.Getenv("LP_NATIVE_VECTOR_WIDTH")); err == nil && w >= 64 {
			sg = uint32(w / 32)
		}
		if info.SubgroupSize != sg || info.MaxSharedMemory != 32768 || info.MaxStorageBufferRange != 128<<20 {
			t.Errorf("lavapipe: subgroup %d (want %d) shared %d range %d", info.SubgroupSize, sg, info.MaxSharedMemory, info.MaxStorageBufferRange)
		}
		if !info.UnifiedMemory() {
			t.Errorf("lavapipe memory should be host visible")
		}
		o, _ := gpu.EnvOptions()
		if info.StagedTransfers != o.ForceStaging {
			t.Errorf("lavapipe: staged transfers %v with %s=%v", info.StagedTransfers, gpu.ForceStagingEnv, o.ForceStaging)
		}
	}
}

func TestDevicesListsAndChooses(t *testing.T) {
	gputest.Device(t) // skip without a device
	infos, err := gpu.Devices(gpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chosen := 0
	for _, in := range infos {
		if in.Chosen {
			chosen++
		}
	}
	if chosen != 1 {
		t.Errorf("%d devices marked chosen, want 1", chosen)
	}
	// Selecting by name substring and by index picks that device.
	name := infos[len(infos)-1].Name
	sel, err := gpu.Devices(gpu.Options{Device: strings.ToUpper(name[:3])})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range sel {
		if in.Chosen && strings.Contains(strings.ToLower(in.Name), strings.ToLower(name[:3])) {
			found = true
		}
	}
	if !found {
		t.Errorf("selecting %q did not choose a matching device", name[:3])
	}
	if _, err := gpu.Devices(gpu.Options{Device: "no-such-device-xyz"}); err == nil || !strings.Contains(err.Error(), "no device matches") {
		t.Errorf("unknown device name: got %v", err)
	}
	if _, err := gpu.Devices(gpu.Options{Device: "99"}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("bad index: got %v", err)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	d := gputest.Device(t)
	for _, n := range []int{1, 7, 1000, 1<<16 + 3} {
		b := alloc(t, d, n)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i)*0.5 - 3
		}
		if err := gpu.WriteSlice(b, 0, v); err != nil {
			t.Fatal(err)
		}
		got := read(t, b, n)
		for i := range v {
			if got[i] != v[i] {
				t.Fatalf("n=%d: element %d = %v, want %v", n, i, got[i], v[i])
			}
		}
		// A partial write at an element offset.
		if n > 3 {
			if err := gpu.WriteSlice(b, 2, []float32{42}); err != nil {
				t.Fatal(err)
			}
			one := []float32{0}
			if err := gpu.ReadSlice(b, 2, one); err != nil || one[0] != 42 {
				t.Fatalf("offset write: %v %v", one, err)
			}
		}
	}
}

func TestTransferBounds(t *testing.T) {
	d := gputest.Device(t)
	b := alloc(t, d, 10)
	if err := gpu.WriteSlice(b, 8, []float32{1, 2, 3}); err == nil {
		t.Errorf("write past the end succeeded")
	}
	if err := b.Read(-4, make([]byte, 4)); err == nil {
		t.Errorf("read at a negative offset succeeded")
	}
}

func TestDispatchAndBarriers(t *testing.T) {
	d := gputest.Device(t)
	const n = 1000
	x, y := alloc(t, d, n), alloc(t, d, n)
	r := d.NewRecorder(false)
	fill(t, r, d, x, n, 2)
	fill(t, r, d, y, n, 1) // independent of the first fill: no barrier
	if r.Barriers() != 0 {
		t.Errorf("independent fills got %d barriers", r.Barriers())
	}
	axpy(t, r, d, y, x, n, 3) // reads x and writes y: needs one barrier
	if r.Barriers() != 1 {
		t.Errorf("after dependent axpy: %d barriers, want 1", r.Barriers())
	}
	axpy(t, r, d, y, x, n, 3) // writes y again: needs another
	if r.Barriers() != 2 {
		t.Errorf("after second axpy: %d barriers, want 2", r.Barriers())
	}
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	for i, v := range read(t, y, n) {
		if v != 13 {
			t.Fatalf("y[%d] = %v, want 13", i, v)
		}
	}
}

func TestProgramReplay(t *testing.T) {
	d := gputest.Device(t)
	const n = 777
	x, y := alloc(t, d, n), alloc(t, d, n)
	if err := gpu.WriteSlice(x, 0, make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	r := d.NewRecorder(true)
	fill(t, r, d, x, n, 0.5)
	axpy(t, r, d, y, x, n, 2) // y += 1 per run
	prog, err := r.Compile()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	// The program's first barrier, and the one between the fill of x and
	// the axpy that reads it.
	if prog.Dispatches() != 2 || prog.Barriers() != 2 {
		t.Errorf("program of %d dispatches and %d barriers, want 2 and 2", prog.Dispatches(), prog.Barriers())
	}
	if err := gpu.WriteSlice(y, 0, make([]float32, n)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, v := range read(t, y, n) {
		if v != 5 {
			t.Fatalf("after 5 runs y[%d] = %v, want 5", i, v)
		}
	}
	if d.Info().TimestampValidBits > 0 {
		tm := prog.Timings()
		if len(tm) != 2 || tm[0].Label != "fill" || tm[1].Label != "axpy" {
			t.Errorf("timings %+v", tm)
		}
	}
	if err := prog.Release(); err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err == nil {
		t.Errorf("Run after Release succeeded")
	}
}

func TestBadBindings(t *testing.T) {
	d := gputest.Device(t)
	p, err := d.Pipeline(fillK)
	if err != nil {
		t.Fatal(err)
	}
	b := alloc(t, d, 16)
	freed, _ := d.Alloc(64)
	freed.Free()
	cases := map[string][]gpu.Binding{
		"after Free":     {freed.All()},
		"outside":        {b.Range(32, 64)},
		"not a multiple": {b.Range(4, 16)},
		"nil":            {{}},
	}
	for name, binds := range cases {
		r := d.NewRecorder(false)
		err := r.Dispatch(p, [3]uint32{1, 1, 1}, []uint32{1, 0}, binds...)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), "fill") {
			t.Errorf("%s: error does not name the kernel: %v", name, err)
		}
		if r.Submit() == nil {
			t.Errorf("%s: Submit after a recording error succeeded", name)
		}
	}
	r := d.NewRecorder(false)
	if err := r.Dispatch(p, [3]uint32{1, 1, 1}, nil); err == nil || !strings.Contains(err.Error(), "0 bindings given") {
		t.Errorf("missing binding: %v", err)
	}
}

// A binding larger than maxStorageBufferRange is refused with a message that
// says to split it; the buffer itself is fine and usable in parts. The
// limit is lowered to 1 MiB so that this runs on every device.
func TestBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 1<<20)
	limit := int64(d.Info().MaxStorageBufferRange)
	if limit != 1<<20 || d.Info().MaxTexelBufferElements > 1<<18 {
		t.Fatalf("limits in force: storage %d, texels %d", limit, d.Info().MaxTexelBufferElements)
	}
	size := limit + 4096
	b, err := d.Alloc(size)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	p, _ := d.Pipeline(fillK)
	r := d.NewRecorder(false)
	err = r.Dispatch(p, [3]uint32{1, 1, 1}, []uint32{1, 0}, b.All())
	if err == nil || !strings.Contains(err.Error(), "maxStorageBufferRange") {
		t.Fatalf("oversized binding: %v", err)
	}
	// The tail beyond the limit is reachable by binding at an offset.
	r = d.NewRecorder(false)
	n := 1024
	tail := b.Range(size-int64(4*n), int64(4*n))
	if err := r.Dispatch(p, groups(n), []uint32{uint32(n), math.Float32bits(7)}, tail); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	if err := gpu.ReadSlice(b, (size-int64(4*n))/4, got); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 7 {
			t.Fatalf("tail[%d] = %v", i, v)
		}
	}
}

func TestArenaAndStats(t *testing.T) {
	d := gputest.Device(t)
	before := d.MemoryStats()
	a := d.NewArena("test")
	var bufs []*gpu.Buffer
	for i := 0; i < 10; i++ {
		b, err := a.Alloc(1000 + int64(i))
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
	}
	mid := d.MemoryStats()
	if mid.Allocated <= before.Allocated || mid.Peak < mid.Allocated {
		t.Errorf("stats did not grow: %+v -> %+v", before, mid)
	}
	for _, b := range bufs[:5] {
		b.Free()
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	after := d.MemoryStats()
	if after.Allocated != before.Allocated || after.Reserved != before.Reserved {
		t.Errorf("arena release leaked: before %+v after %+v", before, after)
	}
	if _, err := a.Alloc(4); err == nil {
		t.Errorf("alloc from a released arena succeeded")
	}
	if err := gpu.WriteSlice(bufs[7], 0, []float32{1}); err == nil {
		// The buffer's memory is gone; writing must fail rather than corrupt.
		t.Logf("write to a buffer of a released arena: accepted (memory kept by the device)")
	}
}

// Thousands of submit/wait cycles must not grow memory or object counts.
func TestNoLeakOverSubmits(t *testing.T) {
	d := gputest.Device(t)
	cycles := 10000
	if testing.Short() {
		cycles = 500
	}
	const n = 64
	x, y := alloc(t, d, n), alloc(t, d, n)
	run := func() {
		r := d.NewRecorder(false)
		fill(t, r, d, x, n, 1)
		axpy(t, r, d, y, x, n, 1)
		if err := r.Run(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		run()
	}
	s0, o0 := d.MemoryStats(), d.ObjectCounts()
	for i := 0; i < cycles; i++ {
		run()
	}
	s1, o1 := d.MemoryStats(), d.ObjectCounts()
	if s1.Allocated != s0.Allocated || s1.Reserved != s0.Reserved {
		t.Errorf("memory grew over %d cycles: %+v -> %+v", cycles, s0, s1)
	}
	if o1 != o0 {
		t.Errorf("Vulkan object counts grew over %d cycles: %+v -> %+v", cycles, o0, o1)
	}
}

// The validation plumbing: a deliberately invalid call must come back as an
// error wrapping ErrValidation.
func TestValidationMessagesBecomeErrors(t *testing.T) {
	gputest.Device(t)
	d, err := gpu.Open(gpu.Options{Validate: true, PipelineCacheDir: "off"})
	if err != nil {
		if validate, _ := envflag.Bool(gpu.ValidateEnv); strings.Contains(err.Error(), "vulkan-validationlayers") && !validate {
			t.Skip("validation layer not installed")
		}
		t.Fatal(err)
	}
	defer d.Close()
	err = d.TriggerValidationErrorForTest()
	if !errors.Is(err, gpu.ErrValidation) {
		t.Fatalf("got %v, want a validation error", err)
	}
}

// Without a driver or without the loader, Open fails with a message that
// says what to install. Each case runs in a child process because the
// loader is opened once per process.
func TestNoDeviceMessage(t *testing.T) {
	if os.Getenv("GPU_TEST_CHILD") == "1" {
		_, err := gpu.Open(gpu.Options{PipelineCacheDir: "off"})
		if err == nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(err.Error())
		os.Exit(0)
	}
	gputest.Device(t)
	for name, env := range map[string]string{
		"no driver": "VK_ICD_FILENAMES=/nonexistent/icd.json",
		"no loader": gpu.LoaderEnv + "=/nonexistent/libvulkan.so.1",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoDeviceMessage$")
		cmd.Env = append(os.Environ(), "GPU_TEST_CHILD=1", env, "VK_DRIVER_FILES=/nonexistent/icd.json")
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: child failed: %v (%s)", name, err, out)
			continue
		}
		msg := string(out)
		if !strings.Contains(msg, "mesa-vulkan-drivers") || !strings.Contains(msg, "apt-get install") {
			t.Errorf("%s: message does not say what to install: %q", name, msg)
		}
	}
}

// A kernel whose declared bindings or push constants do not match its
// shader is refused with a message, instead of reaching the driver (lavapipe
// crashes on such a pipeline).
func TestKernelDeclarationMustMatchShader(t *testing.T) {
	d := gputest.Device(t)
	spv := shaders.SPIRV("axpy") // texel, texel, storage; 5 push words
	for name, k := range map[string]*gpu.Kernel{
		"wrong kind":    {Name: "bad1", SPIRV: spv, Bindings: []gpu.BindingKind{gpu.ReadOnly, gpu.TexelR32F, gpu.ReadWrite}, PushWords: 5},
		"too few":       {Name: "bad2", SPIRV: spv, Bindings: []gpu.BindingKind{gpu.TexelR32F, gpu.TexelR32F}, PushWords: 5},
		"short push":    {Name: "bad3", SPIRV: spv, Bindings: []gpu.BindingKind{gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite}, PushWords: 2},
		"not read-only": {Name: "bad4", SPIRV: shaders.SPIRV("fill"), Bindings: []gpu.BindingKind{gpu.ReadOnly}, PushWords: 3},
		"not SPIR-V":    {Name: "bad5", SPIRV: []byte("not a shader at all!"), Bindings: nil, PushWords: 0},
		// A 16-bit integer texel format where the shader samples floats, and
		// the other way round (matmul_texel_w16 reads B as usamplerBuffer).
		"uint format for floats": {Name: "bad6", SPIRV: spv, Bindings: []gpu.BindingKind{gpu.TexelRGBA16UI, gpu.TexelR32F, gpu.ReadWrite}, PushWords: 5},
		"float format for uints": {Name: "bad7", SPIRV: shaders.SPIRV("matmul_texel_w16"),
			Bindings: []gpu.BindingKind{gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.ReadWrite}, PushWords: 17},
	} {
		if _, err := d.Pipeline(k); err == nil || !strings.Contains(err.Error(), k.Name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	good := &gpu.Kernel{Name: "good", SPIRV: spv, Bindings: []gpu.BindingKind{gpu.TexelRGBA32F, gpu.TexelR32F, gpu.ReadWrite}, PushWords: 5}
	if _, err := d.Pipeline(good); err != nil {
		t.Errorf("matching declaration refused: %v", err)
	}
}

// The 16-bit integer texel formats that 16-bit weights are read through
// are reported, and available on every device the tests run on (they are
// mandatory uniform-texel-buffer formats in Vulkan).
func TestTexel16(t *testing.T) {
	if d := gputest.Device(t); !d.Info().Texel16 {
		t.Errorf("%s: R16_UINT / R16G16B16A16_UINT uniform texel buffers reported unsupported", d)
	}
}

// The on-disk pipeline cache is read with a bound: a cache path that is a
// device never ending (/dev/zero), a folder or garbage counts as no cache,
// and the device opens at once and works.
func TestPipelineCacheBadFile(t *testing.T) {
	info := gputest.Device(t).Info()
	for name, setup := range map[string]func(path string) error{
		"dev zero": func(path string) error { return os.Symlink("/dev/zero", path) },
		"folder":   func(path string) error { return os.Mkdir(path, 0o755) },
		"garbage":  func(path string) error { return os.WriteFile(path, []byte("not a pipeline cache"), 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := setup(gpu.PipelineCachePathForTest(dir, info)); err != nil {
				testenv.Missing(t, "cannot set up the pipeline cache file: "+err.Error())
			}
			start := time.Now()
			o := gpu.OptionsFromEnv()
			o.PipelineCacheDir = dir
			d, err := gpu.Open(o)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("opening took %v", took)
			}
			if _, err := d.Pipeline(fillK); err != nil {
				t.Error(err)
			}
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}
