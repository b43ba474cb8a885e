// Forms: labelled fields whose errors are shown at the field, announced, and tied to the input
// (aria-describedby), plus the messages of a whole form.

import {h, replace} from './dom.js';
import {t, errorText} from './i18n.js';

let fieldSerial = 0;

/**
 * A labelled input. `name` is the API's field name: a refusal whose message names it is shown
 * here. Returns {row, input, error}.
 */
export function field({name, label, type = 'text', value = '', hint, required = false, props = {}}) {
  const id = `field-${name}-${++fieldSerial}`;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const {options = [], ...rest} = props;
  const input = type === 'select'
    ? h('select', {id, name, 'aria-describedby': hintId, ...rest}, options.map(([optionValue, text]) =>
      h('option', {value: optionValue, selected: optionValue === value}, text)))
    : h('input', {id, name, type, value, required, 'aria-describedby': hintId, ...rest});
  const error = h('p', {id: errorId, class: 'field-error', hidden: true});
  const row = h('div', {class: 'field'},
    h('label', {for: id}, label),
    input,
    hint ? h('p', {id: hintId, class: 'hint'}, hint) : null,
    error);
  return {name, row, input, error, hintId, errorId};
}

/** Clears the errors of `fields` and the form message. */
export function clearErrors(fields, message) {
  for (const item of fields) {
    item.error.hidden = true;
    replace(item.error);
    item.input.removeAttribute('aria-invalid');
    item.input.setAttribute('aria-describedby', item.hintId || '');
    if (!item.hintId) item.input.removeAttribute('aria-describedby');
  }
  if (message) showMessage(message, null);
}

/**
 * Shows a refusal: at the field its message names (the server's message as it is, focused so a
 * keyboard or screen-reader user lands on it), else in the form's message area.
 */
export function showError(fields, message, error) {
  const text = error.message || '';
  // The longest name first: a message about `merchant_annual_revenue_max` must not land on a
  // field whose name is a part of it.
  const named = [...fields]
    .sort((a, b) => b.name.length - a.name.length)
    .find((item) => new RegExp(`(^|[^a-z_])${item.name}([^a-z_]|$)`).test(text));
  if (named && error.status === 422) {
    replace(named.error, text);
    named.error.hidden = false;
    named.input.setAttribute('aria-invalid', 'true');
    named.input.setAttribute('aria-describedby', [named.hintId, named.errorId].filter(Boolean).join(' '));
    named.input.focus();
    showMessage(message, {kind: 'error', text: t('form.fix_field')});
    return;
  }
  showMessage(message, {kind: 'error', text: errorText(error)});
}

/** The area under a form for what happened: an error (role=alert) or a success (role=status). */
export function messageArea() {
  return h('div', {class: 'form-message'});
}

export function showMessage(area, message) {
  if (!message) {
    replace(area);
    return;
  }
  replace(area, h('p', {class: message.kind === 'error' ? 'error' : 'success', role: message.kind === 'error' ? 'alert' : 'status'}, message.text));
}

/** Runs `action` with the form's button disabled, so a double click sends one request. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/**
 * A link that downloads a CSV fetched with the session (a plain link could not send the
 * Authorization header): the server's bytes become a Blob URL the link points at.
 */
let csvUrl = null;

export function csvLink(bytes, fileName, label, testId) {
  // One download link is shown at a time: the previous one's bytes are let go.
  if (csvUrl) URL.revokeObjectURL(csvUrl);
  csvUrl = URL.createObjectURL(new Blob([bytes], {type: 'text/csv;charset=utf-8'}));
  const url = csvUrl;
  return h('a', {href: url, download: fileName, class: 'button-link', 'data-testid': testId}, label);
}
