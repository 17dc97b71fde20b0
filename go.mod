module github.com/shlpt-vk/shlpt-vk

go 1.23

require github.com/spf13/pflag v1.1.0
