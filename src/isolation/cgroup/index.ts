/**
 * cgroup drivers: create a container's cgroup with its limits, place its first
 * process in it, read its usage, kill everything in it and remove it.
 * @module
 */

export * from './driver.js';
export { parseLimits, parseByteSize, parseCpuList, hostCpuInfo, MIN_MEMORY } from './limits.js';
export type { LimitsInput, ByteSize, DeviceRateInput, HostCpuInfo } from './limits.js';
export { detectCgroupDriver, readCgroupLayout, parseCgroupMounts, chooseCgroupVersion } from './detect.js';
export type { CgroupLayout, DetectCgroupOptions } from './detect.js';
export { CgroupV1Driver, V1_CONTROLLERS } from './v1.js';
export type { CgroupV1Options, V1Controller } from './v1.js';
export { CgroupV2Driver, V2_CONTROLLERS, cpuSharesToWeight, blkioWeightToIoWeight, memorySwapToV2 } from './v2.js';
export type { CgroupV2Options } from './v2.js';
