// A second stream for work that may run beside the main stream's (the trainer's optimizer step beside the next
// step's forward, model/trainer.cpp), and the events that order the two:
//   follow_main()       side work submitted after this starts after all main work submitted before it;
//   mark(i)             mark i stands for the side work submitted so far (a later mark(i) replaces it);
//   main_waits_for(i)   main work submitted after this starts after mark i.
// CUDA: its own stream and Context (its own reduction scratch, the main Context's math and determinism options),
// one event per mark. CPU: exec() is the main Exec and the calls do nothing, since CPU ops run in program order.
// Plain C++ (no CUDA headers).
#pragma once
#include <memory>
#include <vector>

#include "runtime/exec.h"

namespace erlangshen {

class SideStream {
 public:
  SideStream(const Exec& main, int marks);
  ~SideStream();  // waits for the side work
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  const Exec& exec() const { return side_; }
  void follow_main();
  void mark(int i);
  void main_waits_for(int i);
  // Waits on the host for all side work.
  void synchronize();

 private:
  Exec main_, side_;
  int marks_;
  std::shared_ptr<void> context_;  // the side stream's cuda::Context (CUDA only)
  std::vector<void*> events_;      // marks_ + 1: the marks, then the one follow_main records on the main stream
};

}  // namespace erlangshen
