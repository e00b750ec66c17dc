/**
 * Classic BPF as seccomp uses it: instruction encoding, an emitter that keeps
 * every jump in range, and a disassembler for debugging.
 *
 * Classic BPF jumps only forward, and a conditional jump's offsets are 8 bits
 * (at most 255 instructions). The emitter therefore writes the program
 * backwards, from the last instruction to the first: when a jump is emitted its
 * targets already exist, so their distance is known exactly, and a target out
 * of reach gets a `ja` trampoline (32-bit offset) placed right after the jump.
 * No fix-up pass, no iteration.
 * @internal
 * @module
 */

// Instruction classes and fields (linux/bpf_common.h).
export const BPF_LD = 0x00;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_K = 0x00;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;

/** BPF_MAXINSNS: the longest program the kernel accepts. */
export const BPF_MAXINSNS = 4096;

// Return values (linux/seccomp.h).
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

// struct seccomp_data offsets.
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_ARGS = 16;

/** One `struct sock_filter`. */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** An emitted instruction, identified by its emission order (see {@link BackwardEmitter}). */
export type Label = number;

/** A conditional jump operation. */
export type JumpOp = typeof BPF_JEQ | typeof BPF_JGT | typeof BPF_JGE | typeof BPF_JSET;

/**
 * Builds a program from its end to its start. Each emit call places one
 * instruction *before* everything emitted so far and returns its label;
 * jumps may target any earlier label (which lies after them in the program).
 */
export class BackwardEmitter {
  private readonly reversed: Insn[] = [];

  /** Instructions emitted so far. */
  get length(): number {
    return this.reversed.length;
  }

  private push(insn: Insn): Label {
    this.reversed.push(insn);
    return this.reversed.length - 1;
  }

  /** Offset from a new instruction to `target`: the instructions in between. */
  private distance(target: Label): number {
    if (!Number.isInteger(target) || target < 0 || target >= this.reversed.length) throw new Error(`bad label ${target}`);
    return this.reversed.length - target - 1;
  }

  /** `ret #k`. */
  ret(k: number): Label {
    return this.push({ code: BPF_RET | BPF_K, jt: 0, jf: 0, k: k >>> 0 });
  }

  /** `ld [offset]`: load a 32-bit word of seccomp_data. */
  load(offset: number): Label {
    return this.push({ code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: offset });
  }

  /** `and #k`. */
  and(k: number): Label {
    return this.push({ code: BPF_ALU | BPF_AND | BPF_K, jt: 0, jf: 0, k: k >>> 0 });
  }

  /** Continues at `target`: nothing if it is next, else a `ja` (or a copy of a `ret`). */
  goto(target: Label): Label {
    return this.distance(target) === 0 ? target : this.trampoline(target);
  }

  /**
   * `j<op> #k, ifTrue, ifFalse`. Targets beyond 255 instructions are reached
   * through `ja` trampolines emitted just after the jump.
   */
  jump(op: JumpOp, k: number, ifTrue: Label, ifFalse: Label): Label {
    if (ifTrue === ifFalse) return this.goto(ifTrue);
    let t = ifTrue;
    let f = ifFalse;
    for (;;) {
      if (this.distance(t) > 255) t = this.trampoline(t);
      else if (this.distance(f) > 255) f = this.trampoline(f);
      else break;
    }
    return this.push({ code: BPF_JMP | op | BPF_K, jt: this.distance(t), jf: this.distance(f), k: k >>> 0 });
  }

  /** Reaches a far `target`: a copy of it if it is a `ret` (same size, one jump less), else a `ja`. */
  private trampoline(target: Label): Label {
    const insn = this.reversed[target]!;
    if (insn.code === (BPF_RET | BPF_K)) return this.push({ ...insn });
    return this.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: this.distance(target) });
  }

  /** The program, first instruction first. */
  finish(): Insn[] {
    return [...this.reversed].reverse();
  }
}

/** Serializes instructions as an array of `struct sock_filter` (8 bytes each, little-endian). */
export function encode(program: readonly Insn[]): Uint8Array {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach((insn, i) => {
    // setUint8 would silently wrap an out-of-range offset into a jump somewhere else.
    if (insn.jt > 255 || insn.jf > 255 || insn.jt < 0 || insn.jf < 0) throw new Error(`BPF jump offset out of range at ${i}`);
    view.setUint16(i * 8, insn.code, true);
    view.setUint8(i * 8 + 2, insn.jt);
    view.setUint8(i * 8 + 3, insn.jf);
    view.setUint32(i * 8 + 4, insn.k >>> 0, true);
  });
  return bytes;
}

/** Parses an array of `struct sock_filter` back into instructions. */
export function decode(bytes: Uint8Array): Insn[] {
  if (bytes.length % 8 !== 0) throw new Error(`a BPF program is a multiple of 8 bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const program: Insn[] = [];
  for (let off = 0; off < bytes.length; off += 8) {
    program.push({
      code: view.getUint16(off, true),
      jt: view.getUint8(off + 2),
      jf: view.getUint8(off + 3),
      k: view.getUint32(off + 4, true),
    });
  }
  return program;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

function retName(k: number): string {
  if (k === SECCOMP_RET_ALLOW) return 'ALLOW';
  if (k === SECCOMP_RET_KILL_PROCESS) return 'KILL_PROCESS';
  if (k === SECCOMP_RET_KILL_THREAD) return 'KILL_THREAD';
  if (k === SECCOMP_RET_LOG) return 'LOG';
  if ((k & ~SECCOMP_RET_DATA) >>> 0 === SECCOMP_RET_ERRNO) return `ERRNO(${k & SECCOMP_RET_DATA})`;
  if ((k & ~SECCOMP_RET_DATA) >>> 0 === SECCOMP_RET_TRAP) return `TRAP(${k & SECCOMP_RET_DATA})`;
  return hex(k);
}

/** One line per instruction, e.g. `0012: jge 0x3c ? 0013 : 0040`. For debugging and tests. */
export function disassemble(program: readonly Insn[]): string[] {
  const pad = (n: number) => String(n).padStart(4, '0');
  return program.map((insn, pc) => {
    const { code, jt, jf, k } = insn;
    let text: string;
    if (code === (BPF_LD | BPF_W | BPF_ABS)) text = `ld [${k}]`;
    else if (code === (BPF_ALU | BPF_AND | BPF_K)) text = `and ${hex(k)}`;
    else if (code === (BPF_RET | BPF_K)) text = `ret ${retName(k)}`;
    else if (code === (BPF_JMP | BPF_JA)) text = `ja ${pad(pc + 1 + k)}`;
    else {
      const op = { [BPF_JEQ]: 'jeq', [BPF_JGT]: 'jgt', [BPF_JGE]: 'jge', [BPF_JSET]: 'jset' }[code & 0xf0];
      text = (code & 0x07) === BPF_JMP && op ? `${op} ${hex(k)} ? ${pad(pc + 1 + jt)} : ${pad(pc + 1 + jf)}` : `?? code=${hex(code)} k=${hex(k)}`;
    }
    return `${pad(pc)}: ${text}`;
  });
}
