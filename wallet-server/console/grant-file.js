// A grant file (`wallet_id,amount`, the format of `wallet-server programs grant`) read in the
// browser and sent to POST /v1/admin/programs/{id}/grants in requests of at most 1,000 lines.
//
// Every request's Idempotency-Key is made from the file's SHA-256, the program and the request's
// place in the file: sending the same file again (after a network failure, a closed tab, a
// double click) replays the requests already granted instead of granting twice, for as long as
// the server keeps keys (24 hours by default). The whole file is checked first (shape, amounts,
// no wallet twice, the total within the program's budget), so a bad line stops it before
// anything is granted.

/** Lines per grants request: the endpoint takes at most 1,000. */
export const LINES_PER_REQUEST = 1000;
/** The largest file read in the browser (a city of a million wallets is about 45 MB). */
export const FILE_BYTES_MAX = 64 * 1024 * 1024;
/** Problems listed at most; the count says how many more. */
const PROBLEMS_SHOWN_MAX = 10;
const WALLET_ID = /^[\x21-\x7e]{1,64}$/;
const AMOUNT = /^[1-9][0-9]{0,12}$/;
const AMOUNT_MAX = 1000000000000n;

/** The fields of one CSV line (RFC 4180 quoting). */
function fields(line) {
  const out = [];
  let current = '';
  let quoted = false;
  for (let index = 0; index < line.length; index++) {
    const char = line[index];
    if (quoted) {
      if (char === '"' && line[index + 1] === '"') {
        current += '"';
        index++;
      } else if (char === '"') {
        quoted = false;
      } else {
        current += char;
      }
    } else if (char === '"' && current === '') {
      quoted = true;
    } else if (char === ',') {
      out.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  out.push(current);
  return out;
}

/**
 * The file's lines as {lines: [{line, wallet_id, amount}]}, or {problems: [{key, params}…]}
 * (i18n keys) naming each bad line by its number in the file (the header is line 1), as an
 * editor shows it.
 */
export function parse(text) {
  const rows = text.replace(/^\ufeff/, '').split(/\r?\n/);
  while (rows.length && rows[rows.length - 1] === '') rows.pop();
  if (!rows.length || fields(rows[0]).join(',') !== 'wallet_id,amount') {
    return {problems: [{key: 'grant.bad_header', params: {}}]};
  }
  const lines = [];
  const problems = [];
  const seen = new Map();
  for (let index = 1; index < rows.length; index++) {
    const number = index + 1;
    const cells = fields(rows[index]);
    if (cells.length !== 2) {
      problems.push({key: 'grant.bad_fields', params: {line: number, found: cells.length}});
      continue;
    }
    const [wallet, amount] = cells;
    if (!WALLET_ID.test(wallet)) problems.push({key: 'grant.bad_wallet', params: {line: number}});
    else if (!AMOUNT.test(amount) || BigInt(amount) > AMOUNT_MAX) {
      problems.push({key: 'grant.bad_amount', params: {line: number, amount}});
    } else if (seen.has(wallet)) problems.push({key: 'grant.duplicate', params: {line: number, wallet, first: seen.get(wallet)}});
    else {
      seen.set(wallet, number);
      lines.push({line: number, wallet_id: wallet, amount});
    }
  }
  if (!problems.length && !lines.length) problems.push({key: 'grant.empty', params: {}});
  if (problems.length > PROBLEMS_SHOWN_MAX) {
    const more = problems.length - PROBLEMS_SHOWN_MAX;
    return {problems: [...problems.slice(0, PROBLEMS_SHOWN_MAX), {key: 'grant.more', params: {more}}]};
  }
  return problems.length ? {problems} : {lines};
}

/** The sum of the lines' amounts, exactly (BigInt, never a float). */
export function total(lines) {
  return lines.reduce((sum, line) => sum + BigInt(line.amount), 0n);
}

/** Hex SHA-256 of the file's bytes; a random id where the page has no Web Crypto (plain HTTP). */
export async function fingerprint(bytes) {
  if (crypto.subtle) {
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
  }
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** The lines cut into requests of at most LINES_PER_REQUEST, each with its idempotency key. */
export function requests(lines, fileHash, programId) {
  const out = [];
  for (let start = 0; start < lines.length; start += LINES_PER_REQUEST) {
    const part = lines.slice(start, start + LINES_PER_REQUEST);
    out.push({
      key: `console-grant-${fileHash.slice(0, 32)}-${out.length}-${programId.replace(/[^\x21-\x7e]/g, '_')}`.slice(0, 255),
      first: part[0].line,
      lines: part,
      body: {grants: part.map(({wallet_id, amount}) => ({wallet_id, amount}))},
    });
  }
  return out;
}
