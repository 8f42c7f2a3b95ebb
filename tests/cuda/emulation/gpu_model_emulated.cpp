// gpu_model.cu compiled by the host compiler against the CUDA emulator (emulation/include): the same
// backend code as the nvcc build, run on the CPU.
#include "../gpu_model.cu"
