//go:build !amd64 || purego

package sketch

// useAESNI is false: this platform has no assembly, and every hash takes the
// portable path through crypto/aes.
var useAESNI = false

func cbcMACAESNI(*roundKeys, []byte, uint64, int) uint64 {
	panic("BUG: sketch: no AES-NI assembly on this platform")
}

func hashUint64AESNI(*roundKeys, uint64) uint64 {
	panic("BUG: sketch: no AES-NI assembly on this platform")
}

func hashUint64s8AESNI(*roundKeys, *uint64, *uint64, int) {
	panic("BUG: sketch: no AES-NI assembly on this platform")
}

func hashIDs8AESNI(*roundKeys, *[8][]byte, *[8]uint64, int) {
	panic("BUG: sketch: no AES-NI assembly on this platform")
}
