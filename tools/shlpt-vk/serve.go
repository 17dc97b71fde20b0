package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/serve"
)

func init() {
	register(command{name: "serve", summary: "serve every task prompt of runs (or imported adapters) from one model over HTTP, batching requests across tasks", run: runServe})
}

const serveSynopsis = `serve RUN_DIR|IMPORTED_DIR|ADAPTER_DIR... [--addr 127.0.0.1:8080] [flags]`

func runServe(args []string, stdout io.Writer) error {
	fs := newFlags("serve", serveSynopsis)
	def := serve.DefaultOptions()
	o := def
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (port 0: any free port)")
	fs.StringVar(&o.Model, "model", "", "HF T5 model folder (default: the one the runs were trained on)")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "folder with tokenizer.json (default: the runs')")
	fs.StringVar(&o.Weights, "weights", "", "storage of the model's weights: f32, bf16 or f16 (default: the runs')")
	fs.IntVar(&o.MaxBatch, "max-batch", def.MaxBatch, "rows (inputs of any tasks) per forward pass at most")
	fs.IntVar(&o.MaxBatchTokens, "max-batch-tokens", def.MaxBatchTokens, "encoder positions per forward pass at most (rows × longest prompt and input, of the shape bucket)")
	fs.DurationVar(&o.Window, "batch-window", def.Window, "how long the first waiting input waits for others to join its batch")
	fs.IntVar(&o.QueueLimit, "queue", def.QueueLimit, "inputs waiting at most; beyond, requests get 503 with Retry-After")
	fs.Int64Var(&o.MaxBodyBytes, "max-body", def.MaxBodyBytes, "request body bytes at most (413 beyond)")
	fs.IntVar(&o.MaxInputs, "max-inputs", def.MaxInputs, "inputs per request at most (413 beyond)")
	fs.IntVar(&o.MaxInputBytes, "max-input-bytes", def.MaxInputBytes, "bytes of text per input at most (413 beyond; inputs are cut to the task's input length in tokens, as in training)")
	fs.IntVar(&o.MaxTokens, "max-tokens", def.MaxTokens, "largest max_tokens a completion may ask for")
	fs.DurationVar(&o.Timeout, "timeout", def.Timeout, "time a request may take: to arrive (408 beyond) and in the server (504 beyond)")
	fs.IntVar(&o.Programs, "programs", def.Programs, "recorded encoder passes kept, one per shape bucket (0: every pass runs eagerly; each program holds a block of device memory)")
	grace := fs.Duration("shutdown-grace", 30*time.Second, "on SIGTERM or SIGINT, how long requests in flight may take to finish")
	quiet := fs.Bool("quiet", false, "print nothing but errors")
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	o.Sources = fs.Args()
	if !*quiet {
		o.Logf = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	o.Engine = ag.New(d)
	s, err := serve.New(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		s.Close()
		return err
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx, ln, *grace); err != nil {
		return err
	}
	return d.ValidationError()
}
