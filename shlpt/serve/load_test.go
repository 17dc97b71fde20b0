package serve

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// heyResult is what hey printed: answers by status, and its errors.
type heyResult struct {
	codes  map[int]int
	errors string
	out    string
}

var heyStatus = regexp.MustCompile(`\[(\d+)\]\s+(\d+) responses`)

// hey runs the load generator for d seconds with c workers, posting body
// to url.
func hey(t *testing.T, bin, url, body string, c int, d time.Duration) heyResult {
	t.Helper()
	out, err := exec.Command(bin, "-z", d.String(), "-c", strconv.Itoa(c), "-m", "POST", "-T", "application/json", "-d", body, url).CombinedOutput()
	if err != nil {
		t.Fatalf("hey: %v\n%s", err, out)
	}
	r := heyResult{codes: map[int]int{}, out: string(out)}
	for _, m := range heyStatus.FindAllStringSubmatch(r.out, -1) {
		code, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		r.codes[code] += n
	}
	if i := strings.Index(r.out, "Error distribution:"); i >= 0 {
		r.errors = r.out[i:]
	}
	return r
}

// Load from a real HTTP load generator (hey, Debian's package) over four
// tasks at once, on loopback, for a few seconds: every answer is 200, the
// forward passes hold rows of several requests and several tasks, and the
// device memory stays where it was after a first round of the same load.
func TestLoadWithHey(t *testing.T) {
	bin, err := exec.LookPath("hey")
	if err != nil {
		testenv.Missing(t, "the HTTP load generator hey is not installed (Debian package hey)")
		return
	}
	a, b := testRuns(t)
	s, err := New(Options{Sources: []string{a, b}, Engine: newEngine(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 10*time.Second) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	url := "http://" + ln.Addr().String()
	loads := []struct{ path, body string }{
		{"/v1/classify", `{"model": "sst2", "input": "a gripping and moving film"}`},
		{"/v1/classify", `{"model": "cb", "input": {"premise": "It rained all day.", "hypothesis": "The ground is wet."}}`},
		{"/v1/completions", `{"model": "rte", "prompt": {"sentence1": "A cat sat on the mat.", "sentence2": "An animal sat."}}`},
		{"/v1/completions", `{"model": "copa", "prompt": {"premise": "The man fell.", "question": "cause", "choice1": "He slipped.", "choice2": "He sang."}, "max_tokens": 1}`},
	}
	round := func(d time.Duration) {
		var wg sync.WaitGroup
		for _, l := range loads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := hey(t, bin, url+l.path, l.body, 2, d)
				ok := r.codes[200]
				if ok == 0 || len(r.codes) != 1 || r.errors != "" {
					t.Errorf("%s: answers by status %v, errors %q\n%s", l.body, r.codes, r.errors, r.out)
				}
			}()
		}
		wg.Wait()
	}
	round(1500 * time.Millisecond)
	before := s.opt.Engine.Device().MemoryStats()
	round(1500 * time.Millisecond)
	after := s.opt.Engine.Device().MemoryStats()
	if after.Reserved != before.Reserved {
		t.Errorf("device memory reserved %d bytes after the first round, %d after the second", before.Reserved, after.Reserved)
	}
	s.met.mu.Lock()
	defer s.met.mu.Unlock()
	if multi := s.met.batch.n - s.met.batch.counts[0]; multi == 0 {
		t.Errorf("no forward pass held more than one row (%d passes)", s.met.batch.n)
	}
	if mixed := s.met.tasks.n - s.met.tasks.counts[0]; mixed == 0 {
		t.Errorf("no forward pass mixed tasks (%d passes)", s.met.tasks.n)
	}
	t.Logf("%d passes of %d rows; memory reserved %d bytes", s.met.batches, s.met.rows, after.Reserved)
}
