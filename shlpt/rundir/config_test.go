package rundir

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
)

// config.json holds the method's settings under the method's name and
// nothing of other methods; it reads back to the same configuration, and
// reading is strict.
func TestConfigJSON(t *testing.T) {
	c, err := DefaultConfig("nt")
	if err != nil {
		t.Fatal(err)
	}
	s := MethodSettings[method.SHLPTConfig](&c)
	if s == nil || s.Delta != 1.5 || !s.AllDissimilar || c.PromptLen != 150 {
		t.Fatalf("nt defaults: %+v, prompt length %d", s, c.PromptLen)
	}
	s.Quirks = []string{method.QuirkHSCPadding}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	json.Unmarshal(b, &top)
	for _, n := range method.Names() {
		if _, ok := top[n]; ok != (n == "shlpt") {
			t.Errorf("config.json has settings of %s: %v", n, ok)
		}
	}
	if !bytes.Contains(top["shlpt"], []byte(`"quirks":["hsc-padding"]`)) || !bytes.Contains(top["shlpt"], []byte(`"delta":1.5`)) {
		t.Errorf("shlpt settings %s", top["shlpt"])
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n%+v\n%+v", back, c)
	}
	clone := c.Clone()
	MethodSettings[method.SHLPTConfig](&clone).Delta = 0.5
	MethodSettings[method.SHLPTConfig](&clone).Quirks[0] = method.QuirkPadMaxPool
	clone.Tasks = append(clone.Tasks, "cb")
	if s.Delta != 1.5 || s.Quirks[0] != method.QuirkHSCPadding {
		t.Error("a clone shares the settings")
	}
	nan := c
	nan.LR = math.NaN()
	if x := nan.Clone(); !math.IsNaN(x.LR) {
		t.Errorf("clone of a NaN learning rate: %v", x.LR)
	}

	// A method without settings has no section.
	pt := c.Clone()
	if err := pt.UseMethod("per-task"); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(pt)
	var back2 Config
	if err := json.Unmarshal(b2, &back2); err != nil || back2.Settings != nil || back2.Method != "per-task" {
		t.Errorf("per-task round trip: %+v, %v", back2, err)
	}

	// A partial configuration without a method reads (Validate refuses it).
	var partial Config
	if err := json.Unmarshal([]byte(`{"tasks": ["cb"], "epochs": 3}`), &partial); err != nil || partial.Settings != nil || partial.Epochs != 3 {
		t.Errorf("a partial configuration: %+v, %v", partial, err)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"unknown field", `"seed":42`, `"seed":42,"sede":1`, "sede"},
		{"unknown setting", `"delta":1.5`, `"delta":1.5,"dleta":1`, "dleta"},
		{"missing settings", `"shlpt":{`, `"shlpt_":{`, "no settings of method shlpt"},
		{"unknown method", `"method":"shlpt"`, `"method":"magic"`, "unknown method"},
		{"another method's settings", `"seed":42`, `"seed":42,"l2p":{}`, "earlier shlpt-vk"},
		{"earlier metrics switch", `"primary_metrics":"paper"`, `"reference_metrics":false`, "earlier shlpt-vk"},
	} {
		bad := strings.Replace(string(b), tc.from, tc.to, 1)
		if bad == string(b) {
			t.Fatalf("%s: %s not found in %s", tc.name, tc.from, b)
		}
		var x Config
		if err := json.Unmarshal([]byte(bad), &x); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

// No method is named like a field of config.json (the method's settings
// sit next to them).
func TestMethodNamesAreNotConfigFields(t *testing.T) {
	typ := reflect.TypeOf(configFields{})
	for i := 0; i < typ.NumField(); i++ {
		tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		for _, n := range method.Names() {
			if n == tag {
				t.Errorf("method %s is also a field of config.json", n)
			}
		}
	}
}

// Every registered method gets a valid default configuration from
// UseMethod, with its registered defaults.
func TestUseMethod(t *testing.T) {
	for _, spec := range method.Specs() {
		c, _ := DefaultConfig("")
		if err := c.UseMethod(spec.Name); err != nil {
			t.Fatal(err)
		}
		if c.Method != spec.Name || c.PromptLen != spec.Defaults.PromptLen || c.LR != spec.Defaults.LR ||
			(c.Settings != nil) != spec.HasSettings() {
			t.Errorf("%s: %+v", spec.Name, c)
		}
		if err := spec.Validate(c.Settings, method.RunShape{PromptLen: max(c.PromptLen, 1), NumTasks: 3}); err != nil {
			t.Errorf("%s: defaults do not validate: %v", spec.Name, err)
		}
	}
	var c Config
	if err := c.UseMethod("magic"); err == nil || !strings.Contains(err.Error(), "shlpt") {
		t.Errorf("unknown method: %v", err)
	}
}
