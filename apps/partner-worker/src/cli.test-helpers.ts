/** Runs the CLI in process with captured output, as the certificate command specs do. */
import { runCli, type CliIo } from './cli';

export async function runCaptured(
  argv: string[],
  env: Record<string, string | undefined>,
  cwd: string,
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { env, cwd, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}
