#include "clone.h"

#if DL_HAVE_CLONE_VM

#if defined(__x86_64__)
/* rdi = args, rsi = size, rdx = fn, rcx = arg. The syscall clobbers rcx and
   r11 only, and the child starts with the parent's registers but rax = 0 and
   rsp = the top of its stack (16-byte aligned: `call` keeps the ABI). */
__asm__ (".text\n"
         ".globl dl_clone3_vm\n"
         ".hidden dl_clone3_vm\n"
         ".type dl_clone3_vm,@function\n"
         "dl_clone3_vm:\n"
         "  .cfi_startproc\n"
         "  mov %rcx, %r8\n"
         "  mov $435, %eax\n" /* SYS_clone3 */
         "  syscall\n"
         "  test %rax, %rax\n"
         "  jz 1f\n"
         "  ret\n"
         "1:\n"
         "  .cfi_undefined rip\n"
         "  xor %ebp, %ebp\n"
         "  mov %r8, %rdi\n"
         "  call *%rdx\n"
         "  mov %eax, %edi\n"
         "  mov $231, %eax\n" /* SYS_exit_group */
         "  syscall\n"
         "  hlt\n"
         "  .cfi_endproc\n"
         ".size dl_clone3_vm, .-dl_clone3_vm\n");
#elif defined(__aarch64__)
/* x0 = args, x1 = size, x2 = fn, x3 = arg. */
__asm__ (".text\n"
         ".globl dl_clone3_vm\n"
         ".hidden dl_clone3_vm\n"
         ".type dl_clone3_vm,%function\n"
         "dl_clone3_vm:\n"
         "  .cfi_startproc\n"
         "  mov x9, x2\n"
         "  mov x10, x3\n"
         "  mov x8, #435\n" /* SYS_clone3 */
         "  svc #0\n"
         "  cbz x0, 1f\n"
         "  ret\n"
         "1:\n"
         "  .cfi_undefined x30\n"
         "  mov x29, xzr\n"
         "  mov x30, xzr\n"
         "  mov x0, x10\n"
         "  blr x9\n"
         "  mov x8, #94\n" /* SYS_exit_group */
         "  svc #0\n"
         "  brk #0\n"
         "  .cfi_endproc\n"
         ".size dl_clone3_vm, .-dl_clone3_vm\n");
#endif

#endif
