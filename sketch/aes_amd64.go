//go:build amd64 && !purego

package sketch

import "golang.org/x/sys/cpu"

// useAESNI selects the assembly of aes_amd64.s. It needs AVX as well as
// AES-NI: the VEX encodings take the round keys as unaligned memory
// operands, where the legacy AESENC would fault on a Key not 16-byte
// aligned. Tests set it to false to run the portable path.
var useAESNI = cpu.X86.HasAES && cpu.X86.HasAVX

// cbcMACAESNI returns the first 8 bytes, little-endian, of the CBC-MAC under
// rk of pre[:plen] ‖ id ‖ zero padding, where pre holds the bytes of the
// length prefix (the uvarint of len(id)) from its low byte up, 1 <= plen <= 8,
// and plen == 1 whenever len(id) < 16.
//
//go:noescape
func cbcMACAESNI(rk *roundKeys, id []byte, pre uint64, plen int) uint64

// hashUint64AESNI returns the first 8 bytes, little-endian, of the AES-128
// encryption under rk of the block 08 ‖ v (little-endian) ‖ 7 zero bytes.
//
//go:noescape
func hashUint64AESNI(rk *roundKeys, v uint64) uint64

// hashUint64s8AESNI sets dst[i] = hashUint64AESNI(rk, src[i]) for i < n,
// n a multiple of 8, 8 blocks at a time. dst may be src, or not overlap it.
//
//go:noescape
func hashUint64s8AESNI(rk *roundKeys, dst, src *uint64, n int)

// hashIDs8AESNI sets out[i] to the hash under rk of lanes[i], for 8 ids
// whose encodings are all blocks long: 1 <= blocks <= 8, and each id has
// 16·blocks-16 to 16·blocks-1 bytes (fewer than 128, so its length prefix
// is one byte).
//
//go:noescape
func hashIDs8AESNI(rk *roundKeys, lanes *[8][]byte, out *[8]uint64, blocks int)
