//go:build amd64 && !purego

#include "textflag.h"

// The CBC-MAC of Key.Hash with AES-NI, in VEX encodings so that the round
// keys can be unaligned memory operands. Bytes of the id are loaded 16 at a
// time and never past the end of its page: a short id near the end of a
// page is loaded from the 16 bytes that end at its last byte (the technique
// of the runtime's aeshash), so no load can fault.

// ROUNDS applies AES-128 rounds 1 to 10 to X under the round keys at AX;
// round 0 (the XOR of the first round key) is the caller's.
#define ROUNDS(X) \
	VAESENC     16(AX), X, X; \
	VAESENC     32(AX), X, X; \
	VAESENC     48(AX), X, X; \
	VAESENC     64(AX), X, X; \
	VAESENC     80(AX), X, X; \
	VAESENC     96(AX), X, X; \
	VAESENC     112(AX), X, X; \
	VAESENC     128(AX), X, X; \
	VAESENC     144(AX), X, X; \
	VAESENCLAST 160(AX), X, X

// func cbcMACAESNI(rk *roundKeys, id []byte, pre uint64, plen int) uint64
TEXT ·cbcMACAESNI(SB), NOSPLIT, $0-56
	MOVQ  rk+0(FP), AX
	MOVQ  id_base+8(FP), SI
	MOVQ  id_len+16(FP), CX
	MOVQ  pre+32(FP), DX
	MOVQ  plen+40(FP), BX
	VMOVQ DX, X2
	CMPQ  CX, $16
	JAE   long

	// len(id) < 16, plen == 1: one block, len ‖ id ‖ zeros.
	VPXOR X1, X1, X1
	TESTQ CX, CX
	JEQ   one
	LEAQ  16(SI), DI
	TESTW $0xff0, DI
	JEQ   endofpage

	// The 16 bytes at SI lie in one page: load them, keep len(id) of them.
	VMOVDQU (SI), X1
	LEAQ    mask<>+16(SB), R8
	SUBQ    CX, R8
	VPAND   (R8), X1, X1
	JMP     shift

endofpage:
	// SI is in the last 16 bytes of its page: load the 16 bytes that end at
	// the id's last byte, which start in the same page, and move the id's
	// bytes to the front.
	VMOVDQU -16(SI)(CX*1), X1
	LEAQ    shuffle<>+32(SB), R8
	SUBQ    CX, R8
	VPSHUFB (R8), X1, X1

shift:
	VPSLLDQ $1, X1, X1

one:
	VPOR  X2, X1, X1
	VPXOR (AX), X1, X0
	ROUNDS(X0)
	VMOVQ X0, ret+48(FP)
	RET

long:
	// Block 0: the plen prefix bytes, then the first 16-plen bytes of id.
	VMOVDQU (SI), X1
	LEAQ    shuffle<>+16(SB), R8
	SUBQ    BX, R8
	VPSHUFB (R8), X1, X1
	VPOR    X2, X1, X1
	VPXOR   (AX), X1, X0
	ROUNDS(X0)

	// The encoding has T = plen+len(id) bytes in B = ceil(T/16) >= 2
	// blocks. Blocks 1 to B-2 are full and start in id at 16j-plen; the
	// last holds the m = (T-1)%16+1 bytes that end the id.
	LEAQ (CX)(BX*1), R9
	LEAQ 15(R9), R10
	SHRQ $4, R10
	SUBQ $2, R10
	DECQ R9
	ANDQ $15, R9
	INCQ R9
	LEAQ 16(SI), DI
	SUBQ BX, DI
	TESTQ R10, R10
	JEQ  last

loop:
	VMOVDQU (DI), X1
	VPXOR   (AX), X1, X1
	VPXOR   X1, X0, X0
	ROUNDS(X0)
	ADDQ    $16, DI
	DECQ    R10
	JNE     loop

last:
	VMOVDQU -16(SI)(CX*1), X1
	LEAQ    shuffle<>+32(SB), R8
	SUBQ    R9, R8
	VPSHUFB (R8), X1, X1
	VPXOR   (AX), X1, X1
	VPXOR   X1, X0, X0
	ROUNDS(X0)
	VMOVQ   X0, ret+48(FP)
	RET

// func hashUint64AESNI(rk *roundKeys, v uint64) uint64
TEXT ·hashUint64AESNI(SB), NOSPLIT, $0-24
	MOVQ    rk+0(FP), AX
	MOVQ    v+8(FP), DX
	// The block 08 ‖ v ‖ 7 zero bytes as two little-endian words:
	// 8 | v<<8 and v>>56.
	MOVQ    DX, CX
	SHLQ    $8, DX
	ORQ     $8, DX
	SHRQ    $56, CX
	VMOVQ   DX, X0
	VPINSRQ $1, CX, X0, X0
	VPXOR   (AX), X0, X0
	ROUNDS(X0)
	VMOVQ   X0, ret+16(FP)
	RET

// shuffle is a window of VPSHUFB controls: 16 bytes at shuffle+32-m move
// the last m bytes of a register to the front and zero the rest; 16 bytes
// at shuffle+16-p move the first 16-p bytes up by p and zero the first p.
DATA shuffle<>+0x00(SB)/8, $0x8080808080808080
DATA shuffle<>+0x08(SB)/8, $0x8080808080808080
DATA shuffle<>+0x10(SB)/8, $0x0706050403020100
DATA shuffle<>+0x18(SB)/8, $0x0f0e0d0c0b0a0908
DATA shuffle<>+0x20(SB)/8, $0x8080808080808080
DATA shuffle<>+0x28(SB)/8, $0x8080808080808080
GLOBL shuffle<>(SB), RODATA|NOPTR, $48

// mask: the 16 bytes at mask+16-n keep the first n bytes of a register.
DATA mask<>+0x00(SB)/8, $0xffffffffffffffff
DATA mask<>+0x08(SB)/8, $0xffffffffffffffff
DATA mask<>+0x10(SB)/8, $0x0000000000000000
DATA mask<>+0x18(SB)/8, $0x0000000000000000
GLOBL mask<>(SB), RODATA|NOPTR, $32

// The batch functions keep 8 independent blocks in flight: AESENC is
// pipelined (on recent cores a latency of about 4 cycles and 1 or 2 issued
// a cycle), so 8 interleaved chains of 10 rounds take about the time of one.

// ROUND8(off) applies the AES round of the round key at off(AX) to X0..X7;
// ROUNDS8 applies rounds 1 to 10, round by round, so that the 8 chains
// interleave.
#define ROUND8(off) \
	VAESENC off(AX), X0, X0; \
	VAESENC off(AX), X1, X1; \
	VAESENC off(AX), X2, X2; \
	VAESENC off(AX), X3, X3; \
	VAESENC off(AX), X4, X4; \
	VAESENC off(AX), X5, X5; \
	VAESENC off(AX), X6, X6; \
	VAESENC off(AX), X7, X7

#define ROUNDS8 \
	ROUND8(16); \
	ROUND8(32); \
	ROUND8(48); \
	ROUND8(64); \
	ROUND8(80); \
	ROUND8(96); \
	ROUND8(112); \
	ROUND8(128); \
	ROUND8(144); \
	VAESENCLAST 160(AX), X0, X0; \
	VAESENCLAST 160(AX), X1, X1; \
	VAESENCLAST 160(AX), X2, X2; \
	VAESENCLAST 160(AX), X3, X3; \
	VAESENCLAST 160(AX), X4, X4; \
	VAESENCLAST 160(AX), X5, X5; \
	VAESENCLAST 160(AX), X6, X6; \
	VAESENCLAST 160(AX), X7, X7

// STORE8 writes the low 8 bytes of X0..X7 to the 8 words at DI.
#define STORE8 \
	VMOVQ X0, 0(DI); \
	VMOVQ X1, 8(DI); \
	VMOVQ X2, 16(DI); \
	VMOVQ X3, 24(DI); \
	VMOVQ X4, 32(DI); \
	VMOVQ X5, 40(DI); \
	VMOVQ X6, 48(DI); \
	VMOVQ X7, 56(DI)

// UINT64(off, X) loads the word at off(SI) as the block 08 ‖ v ‖ 7 zero
// bytes (v shifted up a byte) XOR round key 0, which X15 holds with the 08.
#define UINT64(off, X) \
	VMOVQ   off(SI), X; \
	VPSLLDQ $1, X, X; \
	VPXOR   X15, X, X

// func hashUint64s8AESNI(rk *roundKeys, dst, src *uint64, n int)
TEXT ·hashUint64s8AESNI(SB), NOSPLIT, $0-32
	MOVQ    rk+0(FP), AX
	MOVQ    dst+8(FP), DI
	MOVQ    src+16(FP), SI
	MOVQ    n+24(FP), CX
	VMOVDQU (AX), X15
	VPXOR   len8<>(SB), X15, X15
	SHRQ    $3, CX
	JEQ     done

loop:
	UINT64(0, X0)
	UINT64(8, X1)
	UINT64(16, X2)
	UINT64(24, X3)
	UINT64(32, X4)
	UINT64(40, X5)
	UINT64(48, X6)
	UINT64(56, X7)
	ROUNDS8
	STORE8
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNE  loop

done:
	RET

// The lanes of hashIDs8AESNI are 8 slice headers at BX, 24 bytes apart:
// lane i's pointer at 24i(BX), its length at 24i+8(BX).

// SHORT(i, X) sets X to block 0 XOR round key 0 of lane i, an id of 0 to
// 15 bytes (one block): len ‖ id ‖ zeros. It loads the 16 bytes at the id
// unless they cross into the next page, and then the 16 bytes that end at
// its last byte, as cbcMACAESNI does, choosing the address and the
// shuffle control without a branch: a control from keep<> keeps the first
// len bytes, one from shuffle<> moves the last len bytes to the front. An
// empty id (whose pointer may be nil) loads from inside keep<> and keeps
// nothing.
#define SHORT(i, X) \
	MOVQ    (24*i)(BX), SI; \
	MOVQ    (24*i+8)(BX), CX; \
	MOVQ    CX, R9; \
	SHLQ    $4, R9; \
	LEAQ    keep<>(SB), R8; \
	ADDQ    R9, R8; \
	LEAQ    keep<>+128(SB), R10; \
	TESTQ   CX, CX; \
	CMOVQEQ R10, SI; \
	LEAQ    -16(SI)(CX*1), R10; \
	LEAQ    shuffle<>+32(SB), R11; \
	SUBQ    CX, R11; \
	LEAQ    16(SI), R9; \
	TESTW   $0xff0, R9; \
	CMOVQEQ R10, SI; \
	CMOVQEQ R11, R8; \
	VMOVDQU (SI), X; \
	VPSHUFB (R8), X, X; \
	VPSLLDQ $1, X, X; \
	VMOVQ   CX, X8; \
	VPOR    X8, X, X; \
	VPXOR   (AX), X, X

// FIRST(i, X) sets X to block 0 XOR round key 0 of lane i, an id of 16 to
// 127 bytes: its length byte, then its first 15 bytes.
#define FIRST(i, X) \
	MOVQ    (24*i)(BX), SI; \
	MOVQ    (24*i+8)(BX), CX; \
	VMOVDQU (SI), X; \
	VPSLLDQ $1, X, X; \
	VMOVQ   CX, X8; \
	VPOR    X8, X, X; \
	VPXOR   (AX), X, X

// MIDDLE(i, X) XORs into X the full block of lane i that starts DX bytes
// into its id, and round key 0.
#define MIDDLE(i, X) \
	MOVQ  (24*i)(BX), SI; \
	VPXOR (SI)(DX*1), X, X; \
	VPXOR (AX), X, X

// LAST(i, X) XORs into X the last block of lane i, an id of 16 to 127
// bytes: the len%16+1 bytes that end the id, then zeros; and round key 0.
#define LAST(i, X) \
	MOVQ    (24*i)(BX), SI; \
	MOVQ    (24*i+8)(BX), CX; \
	MOVQ    CX, R9; \
	ANDQ    $15, R9; \
	LEAQ    shuffle<>+31(SB), R8; \
	SUBQ    R9, R8; \
	VMOVDQU -16(SI)(CX*1), X8; \
	VPSHUFB (R8), X8, X8; \
	VPXOR   X8, X, X; \
	VPXOR   (AX), X, X

// func hashIDs8AESNI(rk *roundKeys, lanes *[8][]byte, out *[8]uint64, blocks int)
TEXT ·hashIDs8AESNI(SB), NOSPLIT, $0-32
	MOVQ rk+0(FP), AX
	MOVQ lanes+8(FP), BX
	MOVQ out+16(FP), DI
	MOVQ blocks+24(FP), R12
	CMPQ R12, $1
	JNE  long
	SHORT(0, X0)
	SHORT(1, X1)
	SHORT(2, X2)
	SHORT(3, X3)
	SHORT(4, X4)
	SHORT(5, X5)
	SHORT(6, X6)
	SHORT(7, X7)
	ROUNDS8
	STORE8
	RET

long:
	FIRST(0, X0)
	FIRST(1, X1)
	FIRST(2, X2)
	FIRST(3, X3)
	FIRST(4, X4)
	FIRST(5, X5)
	FIRST(6, X6)
	FIRST(7, X7)
	ROUNDS8
	// Blocks 1 to blocks-2 are full and start 16j-1 bytes into the id.
	MOVQ $15, DX
	SUBQ $2, R12
	JEQ  last

middle:
	MIDDLE(0, X0)
	MIDDLE(1, X1)
	MIDDLE(2, X2)
	MIDDLE(3, X3)
	MIDDLE(4, X4)
	MIDDLE(5, X5)
	MIDDLE(6, X6)
	MIDDLE(7, X7)
	ROUNDS8
	ADDQ $16, DX
	DECQ R12
	JNE  middle

last:
	LAST(0, X0)
	LAST(1, X1)
	LAST(2, X2)
	LAST(3, X3)
	LAST(4, X4)
	LAST(5, X5)
	LAST(6, X6)
	LAST(7, X7)
	ROUNDS8
	STORE8
	RET

// len8 is the length byte 08 of HashUint64's block.
DATA len8<>+0x00(SB)/8, $0x0000000000000008
DATA len8<>+0x08(SB)/8, $0x0000000000000000
GLOBL len8<>(SB), RODATA|NOPTR, $16

// keep: the 16 bytes at keep+16n, 0 <= n < 16, are the VPSHUFB control
// that keeps the first n bytes of a register and zeroes the rest.
DATA keep<>+0x00(SB)/8, $0x8080808080808080
DATA keep<>+0x08(SB)/8, $0x8080808080808080
DATA keep<>+0x10(SB)/8, $0x8080808080808000
DATA keep<>+0x18(SB)/8, $0x8080808080808080
DATA keep<>+0x20(SB)/8, $0x8080808080800100
DATA keep<>+0x28(SB)/8, $0x8080808080808080
DATA keep<>+0x30(SB)/8, $0x8080808080020100
DATA keep<>+0x38(SB)/8, $0x8080808080808080
DATA keep<>+0x40(SB)/8, $0x8080808003020100
DATA keep<>+0x48(SB)/8, $0x8080808080808080
DATA keep<>+0x50(SB)/8, $0x8080800403020100
DATA keep<>+0x58(SB)/8, $0x8080808080808080
DATA keep<>+0x60(SB)/8, $0x8080050403020100
DATA keep<>+0x68(SB)/8, $0x8080808080808080
DATA keep<>+0x70(SB)/8, $0x8006050403020100
DATA keep<>+0x78(SB)/8, $0x8080808080808080
DATA keep<>+0x80(SB)/8, $0x0706050403020100
DATA keep<>+0x88(SB)/8, $0x8080808080808080
DATA keep<>+0x90(SB)/8, $0x0706050403020100
DATA keep<>+0x98(SB)/8, $0x8080808080808008
DATA keep<>+0xa0(SB)/8, $0x0706050403020100
DATA keep<>+0xa8(SB)/8, $0x8080808080800908
DATA keep<>+0xb0(SB)/8, $0x0706050403020100
DATA keep<>+0xb8(SB)/8, $0x80808080800a0908
DATA keep<>+0xc0(SB)/8, $0x0706050403020100
DATA keep<>+0xc8(SB)/8, $0x808080800b0a0908
DATA keep<>+0xd0(SB)/8, $0x0706050403020100
DATA keep<>+0xd8(SB)/8, $0x8080800c0b0a0908
DATA keep<>+0xe0(SB)/8, $0x0706050403020100
DATA keep<>+0xe8(SB)/8, $0x80800d0c0b0a0908
DATA keep<>+0xf0(SB)/8, $0x0706050403020100
DATA keep<>+0xf8(SB)/8, $0x800e0d0c0b0a0908
GLOBL keep<>(SB), RODATA|NOPTR, $256
