import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

/** Launches Debian's headless Chromium (installed by hack/install-chromium.sh); Playwright gives it a fresh profile. */
export async function launchChromium(): Promise<Browser> {
  const script = fileURLToPath(new URL('../../hack/install-chromium.sh', import.meta.url));
  const executablePath = execFileSync('bash', [script], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop() as string;
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
