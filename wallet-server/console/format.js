// How numbers and times are shown. Money arrives as decimal strings of whole won and is shown
// with separators, never turned into a float.

import {lang} from './i18n.js';

/** "1234567" → "1,234,567원" (Korean) or "₩1,234,567" (English); null → "—". */
export function won(amount) {
  if (amount === null || amount === undefined) return '—';
  const text = String(amount);
  const negative = text.startsWith('-');
  const digits = negative ? text.slice(1) : text;
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const sign = negative ? '-' : '';
  return lang() === 'ko' ? `${sign}${grouped}원` : `${sign}₩${grouped}`;
}

/** A count with separators. */
export function count(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString(locale());
}

/** "0.015" → "1.5%" (the decimal string shifted two places, without float rounding). */
export function percent(rate) {
  if (rate === null || rate === undefined) return '—';
  const [whole, fraction = ''] = String(rate).split('.');
  const padded = (fraction + '00');
  const integer = String(Number(whole) * 100 + Number(padded.slice(0, 2)));
  const rest = padded.slice(2).replace(/0+$/, '');
  return rest ? `${integer}.${rest}%` : `${integer}%`;
}

/** An RFC 3339 time shown in Korea Standard Time, as the city works. */
export function time(rfc3339) {
  if (!rfc3339) return '—';
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return date.toLocaleString(locale(), {timeZone: 'Asia/Seoul', dateStyle: 'medium', timeStyle: 'medium'}) + ' KST';
}

/** The business date (YYYY-MM-DD in KST) of an RFC 3339 time, moved by `days`. */
export function businessDate(rfc3339, days = 0) {
  const kst = new Date(new Date(rfc3339).getTime() + 9 * 3600 * 1000 + days * 86400 * 1000);
  return kst.toISOString().slice(0, 10);
}

/** A YYYY-MM-DD date moved by `days`. */
export function addDays(date, days) {
  const moved = new Date(`${date}T00:00:00Z`);
  moved.setUTCDate(moved.getUTCDate() + days);
  return moved.toISOString().slice(0, 10);
}

function locale() {
  return lang() === 'ko' ? 'ko-KR' : 'en-GB';
}
