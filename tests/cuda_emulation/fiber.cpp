// Fiber switching (see fiber.h).
#include "tests/cuda_emulation/fiber.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
// erl_emu_switch(save_sp, load_sp): pushes rbp, rbx, r12-r15 and the MXCSR / x87 control words, stores rsp in
// *save_sp, loads load_sp into rsp and pops the same in reverse; `ret` resumes the other fiber.
// erl_emu_fiber_start: a fresh fiber's first return address; calls r13(r12) (entry(arg)) with rsp 16-aligned.
asm(R"(
  .text
  .globl erl_emu_switch
  .type erl_emu_switch,@function
erl_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size erl_emu_switch,.-erl_emu_switch

  .globl erl_emu_fiber_start
  .type erl_emu_fiber_start,@function
erl_emu_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size erl_emu_fiber_start,.-erl_emu_fiber_start
)");
extern "C" void erl_emu_switch(void** save_sp, void* load_sp);
extern "C" void erl_emu_fiber_start();
#endif

namespace erl_emu {

#if defined(__x86_64__)

void fiber_prepare(FiberContext* fiber, char* stack, size_t bytes, void (*entry)(void*), void* arg) {
  // top: 16-aligned with 16 bytes of slack. The return slot at top - 8, so erl_emu_fiber_start starts with rsp
  // = top (16-aligned) and its call gives entry the ABI's rsp % 16 == 8.
  auto top = (reinterpret_cast<uintptr_t>(stack) + bytes - 16) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<uint64_t*>(top);
  slot[-1] = reinterpret_cast<uint64_t>(&erl_emu_fiber_start);  // ret
  slot[-2] = 0;                                                 // rbp
  slot[-3] = 0;                                                 // rbx
  slot[-4] = reinterpret_cast<uint64_t>(arg);                   // r12
  slot[-5] = reinterpret_cast<uint64_t>(entry);                 // r13
  slot[-6] = 0;                                                 // r14
  slot[-7] = 0;                                                 // r15
  const uint32_t mxcsr = 0x1f80;                                // all exceptions masked, round to nearest
  const uint16_t fpucw = 0x037f;                                // x87 defaults
  std::memcpy(&slot[-8], &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(&slot[-8]) + 4, &fpucw, 2);
  fiber->sp = &slot[-8];
}

void fiber_switch(FiberContext* from, FiberContext* to) { erl_emu_switch(&from->sp, to->sp); }

#else

namespace {
struct Start {
  void (*entry)(void*);
  void* arg;
};
void start_trampoline(unsigned hi, unsigned lo) {
  auto* s = reinterpret_cast<Start*>((static_cast<uintptr_t>(hi) << 32) | lo);
  s->entry(s->arg);
}
}  // namespace

void fiber_prepare(FiberContext* fiber, char* stack, size_t bytes, void (*entry)(void*), void* arg) {
  // The Start record lives at the bottom of the fiber's own stack.
  auto* s = reinterpret_cast<Start*>(stack);
  s->entry = entry;
  s->arg = arg;
  getcontext(&fiber->uc);
  fiber->uc.uc_stack.ss_sp = stack + 64;
  fiber->uc.uc_stack.ss_size = bytes - 64;
  fiber->uc.uc_link = nullptr;
  const auto p = reinterpret_cast<uintptr_t>(s);
  makecontext(&fiber->uc, reinterpret_cast<void (*)()>(start_trampoline), 2, static_cast<unsigned>(p >> 32),
              static_cast<unsigned>(p & 0xffffffffu));
}

void fiber_switch(FiberContext* from, FiberContext* to) { swapcontext(&from->uc, &to->uc); }

#endif

}  // namespace erl_emu
