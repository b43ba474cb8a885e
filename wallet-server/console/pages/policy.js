// The policy in force, edited as a whole (PUT /v1/admin/policy takes every field). The server
// validates; its message is shown at the field it names.

import * as api from '../api.js';
import {h, replace} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy} from '../form.js';
import {percent, won} from '../format.js';
import {t} from '../i18n.js';

const FIELDS = [
  ['cashback_rate', 'rate'],
  ['cashback_monthly_spend_cap', 'won'],
  ['monthly_charge_limit', 'won'],
  ['holding_limit', 'won'],
  ['merchant_fee_rate', 'rate'],
];

export async function render(container) {
  const policy = await api.request('GET', '/v1/admin/policy');
  const inForce = h('dl', {class: 'inline-figures'});
  const fields = FIELDS.map(([name, kind]) => field({
    name,
    label: t('policy.' + name),
    value: policy[name],
    hint: t(kind === 'rate' ? 'policy.rate_hint' : 'policy.won_hint'),
    props: {inputmode: 'decimal', autocomplete: 'off'},
  }));
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('policy.save'));
  const form = h('form', {novalidate: true}, fields.map((item) => item.row), submit, message);
  const showInForce = (current) => replace(inForce, FIELDS.map(([name, kind]) => h('div', null,
    h('dt', null, t('policy.' + name)),
    h('dd', null, kind === 'rate' ? percent(current[name]) : won(current[name])))));
  showInForce(policy);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors(fields, message);
    const body = Object.fromEntries(fields.map((item) => [item.name, item.input.value.trim()]));
    busy(submit, async () => {
      try {
        const saved = await api.request('PUT', '/v1/admin/policy', {body, key: api.newKey()});
        showInForce(saved);
        showMessage(message, {kind: 'success', text: t('policy.saved')});
      } catch (error) {
        showError(fields, message, error);
      }
    });
  });
  replace(container,
    h('section', {'aria-labelledby': 'policy-now'}, h('h2', {id: 'policy-now'}, t('policy.in_force')), inForce),
    h('section', {'aria-labelledby': 'policy-edit'}, h('h2', {id: 'policy-edit'}, t('policy.edit')),
      h('p', null, t('policy.intro')), form));
}
