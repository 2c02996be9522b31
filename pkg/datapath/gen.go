package datapath

// The fast-path programs and the map layouts they share with this package live in
// bpf/. Regenerate with `go generate ./pkg/datapath/...` (clang and llvm-strip needed);
// the output is deterministic and committed.
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -strip llvm-strip -type endpoint -type dst_key -type dst -type config -type svc_key -type pol_key -type pol -type pol_range -type ct_key -type ct -type remote_key -type remote -type xnode bpf ../../bpf/datapath.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -Wall -Werror
