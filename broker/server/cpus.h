/*
 * How many CPUs this process may use: the default number of workers.
 */
#ifndef TERND_CPUS_H
#define TERND_CPUS_H

/* The CPUs in the affinity mask, lowered by the cgroup v2 CPU quota
 * (cpu.max "QUOTA PERIOD", rounded up), at least 1 and at most cap. */
int cpus_available(int cap);

#endif
