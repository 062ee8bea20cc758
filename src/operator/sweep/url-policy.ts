import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Which URLs the operator may fetch on behalf of whoever can create a DeploymentTuning. Without this, any
 * namespace editor could make the operator fetch etcd's metrics, the API server, cloud metadata or loopback
 * services, and read the answers back through status (server-side request forgery).
 *
 * By default only `https` to public addresses: loopback, link-local, private, shared (CGNAT), documentation,
 * multicast and reserved ranges are refused, as are names that only make sense inside a cluster or host
 * (`localhost`, `*.svc`, `*.cluster.local`, `*.internal`, single-label names that search domains would expand).
 * The check runs inside the connection's DNS lookup, on every address the name resolves to, and the
 * connection goes to the address that was checked, so DNS rebinding cannot switch it afterwards.
 *
 * The operator's `--trace-url-allow` entries (host names, `*.suffix` patterns, or CIDRs) lift these rules for
 * what they name: a listed host may resolve to any address and use `http`; an address inside a listed CIDR is
 * allowed (and `http` to it). Nothing else changes: redirects are never followed, credentials never sent.
 */

export class UrlRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UrlRefusedError';
  }
}

const REFUSED_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared address space (CGNAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, incl. cloud metadata 169.254.169.254
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

// IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) and 6to4 addresses are judged by the IPv4 address
// they embed (see embeddedV4). Mapped ranges must not be in the BlockList: it checks IPv4 addresses
// against IPv6 rules as IPv4-mapped, so ::ffff:0:0/96 would refuse every IPv4 address.
const REFUSED_V6: [string, number][] = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments (Teredo, ...)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: embeds an IPv4 address
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
];

const REFUSED = new BlockList();
for (const [a, p] of REFUSED_V4) REFUSED.addSubnet(a, p, 'ipv4');
for (const [a, p] of REFUSED_V6) REFUSED.addSubnet(a, p, 'ipv6');

/** Suffixes of names that resolve inside a cluster or host, never to a public service. */
const INTERNAL_SUFFIXES = [
  '.localhost',
  '.local',
  '.internal',
  '.svc',
  '.cluster.local',
  '.home.arpa',
  '.lan',
];

export interface UrlPolicy {
  /** Exact host names (lower case) and `*.suffix` patterns from the allow-list. */
  hosts: string[];
  /** CIDRs from the allow-list. */
  cidrs: BlockList;
  cidrCount: number;
}

export const DEFAULT_URL_POLICY: UrlPolicy = { hosts: [], cidrs: new BlockList(), cidrCount: 0 };

/** Parses `--trace-url-allow` entries; throws a message naming the bad entry. */
export function parseUrlAllowList(entries: string[]): UrlPolicy {
  const policy: UrlPolicy = { hosts: [], cidrs: new BlockList(), cidrCount: 0 };
  for (const raw of entries) {
    const e = raw.trim().toLowerCase();
    if (e === '') continue;
    const slash = e.indexOf('/');
    if (slash >= 0) {
      const addr = e.slice(0, slash);
      const bits = Number(e.slice(slash + 1));
      const family = isIP(addr);
      if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128))
        throw new RangeError(`'${raw}' is not a CIDR such as 10.0.0.0/8 or fd00::/8`);
      policy.cidrs.addSubnet(addr, bits, family === 4 ? 'ipv4' : 'ipv6');
      policy.cidrCount++;
      continue;
    }
    if (isIP(e)) {
      policy.cidrs.addAddress(e, isIP(e) === 4 ? 'ipv4' : 'ipv6');
      policy.cidrCount++;
      continue;
    }
    const name = e.startsWith('*.') ? e.slice(2) : e;
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(name))
      throw new RangeError(`'${raw}' is not a host name, a *.suffix pattern or a CIDR`);
    policy.hosts.push(e);
  }
  return policy;
}

function hostListed(host: string, policy: UrlPolicy): boolean {
  return policy.hosts.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p));
}

/** The IPv4 address an IPv6 address embeds (mapped, NAT64, 6to4), if any. */
function embeddedV4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  const six = /^2002:([0-9a-f]{1,4}):([0-9a-f]{1,4}):/.exec(lower);
  const m = hex ?? six;
  if (!m) return undefined;
  const hi = Number.parseInt(m[1], 16);
  const lo = Number.parseInt(m[2], 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Whether the operator may connect to this address under the policy. */
export function addressAllowed(address: string, policy: UrlPolicy): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (policy.cidrCount > 0 && policy.cidrs.check(address, type)) return true;
  if (family === 6) {
    const v4 = embeddedV4(address);
    if (v4 !== undefined) return addressAllowed(v4, policy);
  }
  return !REFUSED.check(address, type);
}

export interface CheckedUrl {
  url: URL;
  /** The host is on the allow-list by name: any address, and http, are fine. */
  hostListed: boolean;
}

const NOT_ALLOWED =
  'is not allowed: the operator fetches traces only over https from public addresses (an administrator can allow others with --trace-url-allow)';

/** Checks what can be checked without a network: scheme, credentials, host name, literal addresses. */
export function checkUrl(text: string, policy: UrlPolicy): CheckedUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UrlRefusedError(`'${text.slice(0, 200)}' is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UrlRefusedError(`${url.protocol} URLs are not supported; use https`);
  if (url.username || url.password)
    throw new UrlRefusedError('URLs with credentials are refused; the operator never sends credentials');
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === '') throw new UrlRefusedError(`'${text.slice(0, 200)}' has no host`);
  const listed = hostListed(host, policy);
  const literal = isIP(host) !== 0;
  if (!listed) {
    if (literal) {
      if (!addressAllowed(host, policy)) throw new UrlRefusedError(`the address ${host} ${NOT_ALLOWED}`);
      if (
        url.protocol === 'http:' &&
        !(policy.cidrCount > 0 && policy.cidrs.check(host, isIP(host) === 4 ? 'ipv4' : 'ipv6'))
      )
        throw new UrlRefusedError(`http://${host} ${NOT_ALLOWED}`);
    } else {
      if (
        host === 'localhost' ||
        !host.includes('.') ||
        INTERNAL_SUFFIXES.some((s) => host.endsWith(s) || host === s.slice(1))
      )
        throw new UrlRefusedError(`the host ${host} ${NOT_ALLOWED}`);
      // http to a name is allowed only when every address it resolves to lies in a listed CIDR (see lookup).
      if (url.protocol === 'http:' && policy.cidrCount === 0)
        throw new UrlRefusedError(`http://${host} ${NOT_ALLOWED}`);
    }
  }
  return { url, hostListed: listed };
}

/**
 * A DNS lookup for net/tls.connect that resolves the name once, refuses it unless every address is allowed,
 * and hands the connection exactly the addresses it checked.
 */
/** Node's lookup callback, in the two shapes `options.all` selects. */
type LookupCallback = (err: Error | null, address?: string | LookupAddress[], family?: number) => void;

export function guardedLookup(checked: CheckedUrl, policy: UrlPolicy): LookupFunction {
  const http = checked.url.protocol === 'http:';
  return ((hostname: string, options: { all?: boolean; family?: number }, callback: LookupCallback) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses: LookupAddress[]) => {
      if (err) {
        callback(new UrlRefusedError(`the host ${hostname} could not be resolved`));
        return;
      }
      if (!checked.hostListed) {
        const bad = addresses.find((a) => !addressAllowed(a.address, policy));
        const outsideCidrs = addresses.some(
          (a) => !(policy.cidrCount > 0 && policy.cidrs.check(a.address, a.family === 4 ? 'ipv4' : 'ipv6')),
        );
        if (bad || addresses.length === 0 || (http && outsideCidrs)) {
          callback(new UrlRefusedError(`the host ${hostname} ${NOT_ALLOWED}`));
          return;
        }
      }
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0].address, addresses[0].family);
    });
  }) as LookupFunction;
}
