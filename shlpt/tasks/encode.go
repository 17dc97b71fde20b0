package tasks

import (
	"errors"
	"fmt"
)

// Tokenizer turns text into token ids. Encode must append the end-of-sequence
// id EOS, as T5's tokenizer does.
type Tokenizer interface {
	Encode(text string) ([]int, error)
}

// Token ids of T5's vocabulary that encoding relies on.
const (
	PadID = 0
	EOS   = 1 // </s>
)

// ErrTargetTooLong marks a target with more tokens than the task's
// target length; Encode wraps it.
var ErrTargetTooLong = errors.New("target longer than the task's target length")

// Encoded is an example as token ids.
type Encoded struct {
	// Input holds at most MaxInputLen ids and ends with EOS; it is not
	// padded (pad with PadID to batch).
	Input []int
	// Target holds exactly Task.TargetLen ids: the target's ids, ending with
	// EOS, then PadID.
	Target []int
	// InputLen is the input's length before truncation, including EOS.
	InputLen int
	// Truncated reports that the input was cut to MaxInputLen.
	Truncated bool
}

// Encode tokenizes ex for task t: the input truncated to MaxInputLen tokens
// including </s> (the reference truncates and keeps </s> last), the target
// padded to t.TargetLen. A target longer than t.TargetLen is an error, as
// the reference asserts an exact fit.
func Encode(tok Tokenizer, t *Task, ex Example) (Encoded, error) {
	return EncodeLen(tok, ex, MaxInputLen, t.TargetLen)
}

// EncodeLen is Encode with explicit lengths.
func EncodeLen(tok Tokenizer, ex Example, maxInput, targetLen int) (Encoded, error) {
	if maxInput < 1 || targetLen < 1 {
		return Encoded{}, fmt.Errorf("encode: lengths must be positive (input %d, target %d)", maxInput, targetLen)
	}
	in, err := encodeEOS(tok, ex.Input)
	if err != nil {
		return Encoded{}, fmt.Errorf("%s: input: %w", ex.Pos, err)
	}
	e := Encoded{InputLen: len(in)}
	if len(in) > maxInput {
		in = append(in[:maxInput-1:maxInput-1], EOS)
		e.Truncated = true
	}
	e.Input = in
	tg, err := encodeEOS(tok, ex.Target)
	if err != nil {
		return Encoded{}, fmt.Errorf("%s: target: %w", ex.Pos, err)
	}
	if len(tg) > targetLen {
		return Encoded{}, fmt.Errorf("%s: %w: %q is %d tokens with </s>, target length %d",
			ex.Pos, ErrTargetTooLong, ex.Target, len(tg), targetLen)
	}
	e.Target = make([]int, targetLen)
	copy(e.Target, tg)
	return e, nil
}

// encodeEOS tokenizes text and checks that the ids end with EOS.
func encodeEOS(tok Tokenizer, text string) ([]int, error) {
	ids, err := tok.Encode(text)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 || ids[len(ids)-1] != EOS {
		return nil, fmt.Errorf("tokenizer returned ids that do not end with </s> (%d)", EOS)
	}
	return ids, nil
}
