/**
 * The kernel structures the Linux datapath hands to `recvmmsg`/`sendmmsg`, as word offsets into
 * `Uint32Array`s: `struct mmsghdr`, `struct iovec`, and the `UDP_SEGMENT` control message.
 *
 * Why words: the datapath fills these structures in arrays that live outside the JavaScript
 * heap and passes their addresses to the kernel, so every field is written in place, never
 * through an object. The layouts are those of the LP64 kernel ABI (x86_64 and aarch64), which
 * is all io/linux/libc.ts supports.
 *
 * @module
 */

/** Size of `struct mmsghdr` on LP64 Linux: `msghdr` (56 bytes) + `msg_len` (4) + padding. */
export const MMSG_SIZE = 64;
/** {@link MMSG_SIZE} in 32-bit words. */
export const MMSG_WORDS = MMSG_SIZE / 4;
/** Word offset of `void *msg_name`. */
export const W_NAME = 0;
/** Word offset of `socklen_t msg_namelen`. */
export const W_NAMELEN = 2;
/** Word offset of `struct iovec *msg_iov`. */
export const W_IOV = 4;
/** Word offset of `size_t msg_iovlen`. */
export const W_IOVLEN = 6;
/** Word offset of `void *msg_control`. */
export const W_CONTROL = 8;
/** Word offset of `size_t msg_controllen`. */
export const W_CONTROLLEN = 10;
/** Word offset of `int msg_flags`. */
export const W_FLAGS = 12;
/** Word offset of `unsigned msg_len` (what the kernel received or sent). */
export const W_LEN = 14;
/** Size of `struct iovec`: a pointer and a length. */
export const IOV_SIZE = 16;

/** Bytes of the `UDP_SEGMENT` control message: `CMSG_SPACE(2)` (header 16, u16, padded to 8). */
export const GSO_CONTROL = 24;
/** Its `cmsg_len`: `CMSG_LEN(2)`. */
export const GSO_CONTROL_LEN = 18;

const TWO_32 = 0x100000000;

/** The address of `buffer`'s first byte, as a number (stable: the datapath's arrays are large). */
export function addressOf(buffer: ArrayBufferView): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

/** Writes the 64-bit `pointer` at word `at` of `words`, low word first (little-endian). */
export function writePointer(words: Uint32Array, at: number, pointer: number): void {
  words[at] = pointer % TWO_32;
  words[at + 1] = Math.floor(pointer / TWO_32);
}
