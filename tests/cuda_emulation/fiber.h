// Fibers for the CUDA emulation (grid_runner.cpp): cooperative threads on one host thread, switched explicitly.
// On x86-64 a switch saves the callee-saved registers and the floating-point control words on the fiber's own
// stack and swaps stack pointers (no system call: ucontext's swapcontext makes two, which made the emulated GPU
// tests 3x slower); elsewhere it falls back to ucontext.
#pragma once
#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace erl_emu {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;  // saved stack pointer (registers stored below it)
#else
  ucontext_t uc;
#endif
};

// Prepares `fiber` to run entry(arg) on [stack, stack + bytes) at its first switch. entry must never return: it
// ends by switching away for good.
void fiber_prepare(FiberContext* fiber, char* stack, size_t bytes, void (*entry)(void*), void* arg);

// Saves the running context into `from` and resumes `to`.
void fiber_switch(FiberContext* from, FiberContext* to);

}  // namespace erl_emu
