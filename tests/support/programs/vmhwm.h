/* vmhwm.h — peak RSS of the calling program, for the reliability programs' figures. */
#ifndef POLYTEL_TEST_VMHWM_H
#define POLYTEL_TEST_VMHWM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Peak RSS of this program: VmHWM, in KiB (-1 when unknown). Not ru_maxrss: on Linux it carries the
 * spawning process's high-water mark across fork+exec (exec records the old mm's peak), so under pytest it
 * reports pytest's size.
 */
static inline long vmhwm_kib(void) {
  long kib = -1;
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  if (f) {
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
    fclose(f);
  }
  return kib;
}

#endif
