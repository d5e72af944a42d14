// Tokens with any claims, signed with the test EHR key (ES256, kid "dev"),
// for cases quietroomctl does not mint: an `exp` long past, a `locale`.
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

/* claims are added to (or override) a valid patient token for sid. */
export async function mintToken(q, { sid, sub, role = 'patient', name = null, ...claims }) {
    const key = createPrivateKey(await readFile(q.ehrKey));
    const now = Math.floor(Date.now() / 1000);
    const payload = {
        iss: 'quietroom-dev', aud: 'quietroom', sub, role, sid, jti: randomUUID(),
        iat: now, exp: now + 3600, ...(name ? { name } : {}), ...claims,
    };
    const input = `${b64({ alg: 'ES256', kid: 'dev', typ: 'JWT' })}.${b64(payload)}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    return `${input}.${sig}`;
}
