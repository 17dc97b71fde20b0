package synth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
)

// t5Pieces are the SentencePiece pieces of T5's vocabulary that the
// family's texts use, with their ids and log-probabilities in T5's
// tokenizer (spiece.model shipped with t5-small/base/large; checked
// against it by the tests when it is at hand). Every word of the family is
// one piece "▁word"; the templates end with ":".
var t5Pieces = map[string]struct {
	ID    int
	Score float64
}{
	"▁": {3, -2.0122928619384766}, ":": {10, -4.414328098297119},
	"▁words": {1234, -9.678145408630371}, "▁list": {570, -8.963666915893555}, "▁items": {1173, -9.6336669921875},
	"▁one": {80, -7.012735843658447}, "▁two": {192, -7.873607158660889}, "▁three": {386, -8.567726135253906},
	"▁four": {662, -9.126943588256836}, "▁five": {874, -9.400984764099121}, "▁six": {1296, -9.71579647064209},
	"▁seven": {2391, -10.306937217712402}, "▁eight": {2641, -10.393319129943848}, "▁nine": {4169, -10.823565483093262},
	"▁eleven": {20394, -12.562232971191406}, "▁twelve": {13369, -12.01242446899414}, "▁zero": {5733, -11.125292778015137},
	"▁red": {1131, -9.597526550292969}, "▁blue": {1692, -9.964017868041992}, "▁green": {1442, -9.821283340454102},
	"▁yellow": {4459, -10.884140014648438}, "▁black": {1001, -9.51754093170166}, "▁white": {872, -9.397933959960938},
	"▁brown": {4216, -10.832566261291504}, "▁purple": {11094, -11.801074028015137},
	"▁dog": {1782, -10.016946792602539}, "▁cat": {1712, -9.974002838134766}, "▁horse": {4952, -10.985146522521973},
	"▁bird": {5963, -11.164069175720215}, "▁fish": {2495, -10.341700553894043}, "▁cow": {9321, -11.620142936706543},
	"▁sheep": {15184, -12.159996032714844}, "▁mouse": {8429, -11.517792701721191},
	"▁bread": {4109, -10.81084156036377}, "▁apple": {8947, -11.578015327453613}, "▁rice": {6605, -11.268397331237793},
	"▁cheese": {3285, -10.589590072631836}, "▁milk": {3702, -10.707868576049805}, "▁cake": {4340, -10.857653617858887},
	"▁soup": {5759, -11.130587577819824}, "▁meat": {3604, -10.686142921447754},
	"▁car": {443, -8.709365844726562}, "▁door": {1365, -9.762978553771973}, "▁book": {484, -8.812932014465332},
	"▁chair": {3533, -10.664475440979004}, "▁table": {953, -9.476469993591309}, "▁phone": {951, -9.473695755004883},
	"▁house": {629, -9.074068069458008}, "▁ball": {1996, -10.139307975769043},
	"▁yes": {4273, -10.844173431396484}, "▁no": {150, -7.63729190826416}, "▁true": {1176, -9.634805679321289},
	"▁false": {6136, -11.193758010864258}, "▁good": {207, -7.943995952606201}, "▁bad": {1282, -9.70892333984375},
	"▁high": {306, -8.31862735748291}, "▁low": {731, -9.223771095275879},
}

// T5 vocabulary sizes: the tokenizer's pieces (SentencePiece's 32,000 and
// 100 sentinels) and the model's embedding rows.
const (
	tokenizerVocab = 32100
	ModelVocab     = 32128
)

// WriteTokenizer writes into dir a tokenizer.json (and
// tokenizer_config.json) that tokenizes the family's texts exactly as T5's
// own tokenizer does — the same pieces at the same ids — built from the
// pieces above, so that the demo needs no file from outside. Ids of pieces
// the family does not use hold placeholders that no text produces.
func WriteTokenizer(dir string) error {
	vocab := make([][2]any, tokenizerVocab)
	for i := range vocab {
		vocab[i] = [2]any{fmt.Sprintf("<unused_%d>", i), -100.0}
	}
	vocab[0], vocab[1], vocab[2] = [2]any{"<pad>", 0.0}, [2]any{"</s>", 0.0}, [2]any{"<unk>", 0.0}
	for k := 0; k < 100; k++ {
		vocab[32000+k] = [2]any{fmt.Sprintf("<extra_id_%d>", 99-k), 0.0}
	}
	for piece, p := range t5Pieces {
		vocab[p.ID] = [2]any{piece, p.Score}
	}
	special := func(id int, content string) map[string]any {
		return map[string]any{"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
			"normalized": false, "special": true}
	}
	metaspace := map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}
	tok := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": []any{special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")},
		// An empty charsmap: the family's texts are plain ASCII, which T5's
		// normalization leaves as it is.
		"normalizer":    map[string]any{"type": "Precompiled", "precompiled_charsmap": "BAAAAAAAAAA="},
		"pre_tokenizer": metaspace,
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair": []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"special_tokens": map[string]any{"</s>": map[string]any{"id": "</s>", "ids": []int{1}, "tokens": []string{"</s>"}}},
		},
		"decoder": metaspace,
		"model":   map[string]any{"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": false},
	}
	b, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tokenizer.json"), b); err != nil {
		return err
	}
	cfg := []byte(`{"model_max_length": 512, "clean_up_tokenization_spaces": true, "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}` + "\n")
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg)
}
