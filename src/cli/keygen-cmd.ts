import { isZ85Key } from "../protocol/z85.js";
import { parse, UsageError } from "./usage.js";

export const KEYGEN_HELP = `zgrid keygen [--json]

Prints a new CurveZMQ key pair (Z85, 40 characters each) as the two environment variables a client,
the CLI or zgrid worker takes its keys from:

  ZGRID_CURVE_PUBLIC_KEY='...'
  ZGRID_CURVE_SECRET_KEY='...'

Add the public key to the server's --curve-clients (or --curve-workers) file; keep the secret key to
the one who uses it. Without keys of its own, each connection makes a new pair, which a server with an
allow-list refuses.

      --json     print {"publicKey", "secretKey"} instead`;

/** `zgrid keygen`: a new key pair on stdout. */
export async function runKeygen(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } });
  if (values.help) {
    process.stdout.write(KEYGEN_HELP + "\n");
    return 0;
  }
  const { curveKeyPair } = await import("zeromq");
  const keys = curveKeyPair();
  // Z85 has no single quote: the lines are safe to source in a shell as they are.
  process.stdout.write(
    values.json
      ? JSON.stringify(keys) + "\n"
      : `ZGRID_CURVE_PUBLIC_KEY='${keys.publicKey}'\nZGRID_CURVE_SECRET_KEY='${keys.secretKey}'\n`,
  );
  return 0;
}

/** The key pair of ZGRID_CURVE_PUBLIC_KEY and ZGRID_CURVE_SECRET_KEY: both or neither. */
export function curveKeysFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): { publicKey: string; secretKey: string } | undefined {
  const publicKey = env.ZGRID_CURVE_PUBLIC_KEY || undefined;
  const secretKey = env.ZGRID_CURVE_SECRET_KEY || undefined;
  if (publicKey === undefined && secretKey === undefined) return undefined;
  if (publicKey === undefined || secretKey === undefined)
    throw new UsageError(
      "ZGRID_CURVE_PUBLIC_KEY and ZGRID_CURVE_SECRET_KEY go together: set both (zgrid keygen prints a pair) or neither",
    );
  if (!isZ85Key(publicKey) || !isZ85Key(secretKey))
    throw new UsageError(
      "ZGRID_CURVE_PUBLIC_KEY and ZGRID_CURVE_SECRET_KEY must be CurveZMQ keys of 40 Z85 characters (zgrid keygen prints a pair)",
    );
  return { publicKey, secretKey };
}
