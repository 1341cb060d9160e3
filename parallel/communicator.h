// Communicators: collectives over one process group, behind one interface (MPI on host buffers for the CPU
// backend; NCCL on device buffers for CUDA). Groups are passed explicitly to the code that uses them.
#pragma once
#include <cstddef>
#include <string>

namespace erlangshen {

enum class ReduceOp { Sum, Max };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // e.g. "tp", "dp", "world" (for error messages)
  virtual void all_reduce(float* data, size_t count, ReduceOp op) = 0;
  virtual void all_reduce(double* data, size_t count, ReduceOp op) = 0;
  virtual void barrier() = 0;
  // Seconds spent inside collectives since construction (progress line's communication counter).
  virtual double comm_seconds() const { return 0.0; }
};

// A group of one process: every collective is the identity.
class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string name = "self") : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }
  void all_reduce(float*, size_t, ReduceOp) override {}
  void all_reduce(double*, size_t, ReduceOp) override {}
  void barrier() override {}

 private:
  std::string name_;
};

}  // namespace erlangshen
