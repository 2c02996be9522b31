// Command sdncni is the CNI plugin binary: a thin shim that forwards each request to the
// node's sdncni-controller over a unix socket.
package main

import (
	"fmt"

	"github.com/sdncni/sdncni/internal/version"
)

func main() {
	fmt.Println("sdncni", version.Version)
}
