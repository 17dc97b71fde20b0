package tasks

import (
	"fmt"
	"strings"
)

// Format names a file format that a reader understands.
type Format string

// The formats users' task files come in. docs/data.md describes each.
const (
	// ZhangCSV is the CSV of Zhang et al. (2015): no header, the 1-based
	// class in the first column, RFC 4180 quoting (fields may hold quotes,
	// commas and newlines).
	ZhangCSV Format = "zhang-csv"
	// GLUETSV is GLUE's tab-separated format with a header row and no
	// quoting.
	GLUETSV Format = "glue-tsv"
	// SuperGLUEJSONL is one JSON object per line; MultiRC nests
	// passage → questions → answers.
	SuperGLUEJSONL Format = "superglue-jsonl"
	// IMDBJSON is a JSON list of {"sentence", "label": "Good"|"Bad"}.
	IMDBJSON Format = "imdb-json"
	// SQuADJSON is the official SQuAD v2 JSON.
	SQuADJSON Format = "squad-json"
	// OLoRAJSON is O-LoRA's JSON list of {"sentence", "label"} whose sentence
	// is already templated; it is used as the input verbatim.
	OLoRAJSON Format = "olora-json"
	// LFPT5Text is LFPT5's "text<TAB>label word" lines; the text is used as
	// the input verbatim.
	LFPT5Text Format = "lfpt5-txt"
)

// Formats lists every format in a fixed order.
func Formats() []Format {
	return []Format{ZhangCSV, GLUETSV, SuperGLUEJSONL, IMDBJSON, SQuADJSON, OLoRAJSON, LFPT5Text}
}

// ParseFormat returns the format with the given name.
func ParseFormat(name string) (Format, error) {
	for _, f := range Formats() {
		if string(f) == name {
			return f, nil
		}
	}
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown format %q (expected one of %s)", name, strings.Join(names, ", "))
}

// ext is the file extension the SHLPT layout uses for a format.
func (f Format) ext() string {
	switch f {
	case ZhangCSV:
		return ".csv"
	case GLUETSV:
		return ".tsv"
	case SuperGLUEJSONL:
		return ".jsonl"
	case LFPT5Text:
		return ".txt"
	default:
		return ".json"
	}
}

// foreign reports whether a format comes from another project: its inputs
// are used verbatim and its label words are matched through aliases.
func (f Format) foreign() bool { return f == OLoRAJSON || f == LFPT5Text }

// Verbatim reports whether files of this format hold the model's input
// text as it is (no template applies to them).
func (f Format) Verbatim() bool { return f.foreign() }
