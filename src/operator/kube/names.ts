import { createHash } from 'node:crypto';

/**
 * Names and label values derived from user-chosen object names, bounded to what Kubernetes accepts. An object
 * name may be 253 characters, a label value only 63 and a derived name must still fit in 253; a name that is
 * too long is cut and suffixed with a hash of the whole, so two long names sharing a prefix stay distinct.
 */

const hash = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);

/** Trims characters a name or label value may not end (or start) with after a cut. */
const trimEnds = (s: string) => s.replace(/^[^a-z0-9A-Z]+/, '').replace(/[^a-z0-9A-Z]+$/, '');

/** A label value (at most 63 characters) standing for `name`: the name itself when it fits. */
export function labelValue(name: string): string {
  if (name.length <= 63 && /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(name)) return name;
  return `${trimEnds(name.slice(0, 52))}-${hash(name, 10)}`;
}

/** `base` + `suffix` within `max` characters (DNS subdomain names: 253). */
export function boundedName(base: string, suffix: string, max = 253): string {
  if (base.length + suffix.length <= max) return base + suffix;
  const keep = max - suffix.length - 11;
  return `${trimEnds(base.slice(0, keep))}-${hash(base, 10)}${suffix}`;
}
