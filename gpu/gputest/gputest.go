// Package gputest opens the Vulkan device that tests share.
//
// Tests call Device(t). The device is opened once per test binary with the
// options from the environment (SHLPT_VK_DEVICE, SHLPT_VK_VALIDATE); when no
// device is available the test is skipped, or fails under SHLPT_VK_REQUIRE=1.
// Every test that uses the device fails if the validation layer reported
// anything while it ran.
package gputest

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

var (
	once    sync.Once
	dev     *gpu.Device
	openErr error
)

// Device returns the shared test device.
func Device(t testing.TB) *gpu.Device {
	t.Helper()
	// A misspelt setting is a failure, not a reason to skip.
	if _, err := gpu.EnvOptions(); err != nil {
		t.Fatal(err)
	}
	once.Do(func() {
		dev, openErr = gpu.Open(gpu.OptionsFromEnv())
	})
	if openErr != nil {
		testenv.Missing(t, fmt.Sprintf("no Vulkan device: %v", openErr))
		return nil
	}
	// Messages left over from an earlier test belong to it, not to this one.
	if err := dev.ValidationError(); err != nil {
		t.Logf("validation messages before this test: %v", err)
	}
	t.Cleanup(func() {
		if err := dev.Wait(); err != nil {
			t.Errorf("waiting for the device: %v", err)
		}
		if err := dev.ValidationError(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return dev
}

// Main runs the tests, then the cleanups (removing files the tests
// shared, say), and then closes the shared device, failing the run if
// closing reported an error (a validation message, for example).
// Use it as: func TestMain(m *testing.M) { gputest.Main(m) }.
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if dev != nil {
		if err := dev.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the test device:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// LimitBindings makes d bind at most n bytes per binding until the test
// ends (see gpu.Device.SetMaxBindingBytes), so that tests of operands
// "above the binding limit" exceed it with small arrays on every device,
// including those that bind gigabytes.
func LimitBindings(t testing.TB, d *gpu.Device, n int64) {
	t.Helper()
	prev, err := d.SetMaxBindingBytes(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := d.SetMaxBindingBytes(prev); err != nil {
			t.Error(err)
		}
	})
}
