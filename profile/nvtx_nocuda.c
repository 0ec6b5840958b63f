/* NVTX without CUDA: there is no tool to report to, so every call is a no-op. */
#include "profile/nvtx.h"

void prof_range_push(const char *name) { (void)name; }
void prof_range_pop(void) {}
void prof_mark(const char *name) { (void)name; }
