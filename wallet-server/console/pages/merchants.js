// Merchants: search by login or name prefix, page through them, suspend (payments refused,
// settlement unaffected) and reinstate, and register a new one.

import * as api from '../api.js';
import {h, replace} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy} from '../form.js';
import {won} from '../format.js';
import {t, errorText} from '../i18n.js';
import {searchList, reasonForm} from './list.js';

export async function render(container, context) {
  const list = await searchList({
    path: '/v1/admin/merchants',
    label: t('merchants.search'),
    hint: t('merchants.search_hint'),
    caption: t('merchants.table'),
    headers: ['login', 'name', 'business_number', 'bank_account', 'category', 'annual_revenue', 'status', 'actions']
      .map((name) => t('merchants.' + name)),
    row: (merchant, refresh, actions) => [
      merchant.login,
      merchant.name,
      merchant.business_number,
      merchant.bank_account,
      merchant.category ?? '—',
      won(merchant.annual_revenue),
      h('span', {class: 'badge badge-' + merchant.status}, t('status.' + merchant.status)),
      merchant.status === 'suspended'
        ? h('button', {type: 'button', on: {click: (event) => reinstate(merchant, event.currentTarget, refresh, actions)}},
          t('merchants.reinstate'), h('span', {class: 'visually-hidden'}, ` ${merchant.login}`))
        : h('button', {type: 'button', on: {click: () => suspend(merchant, refresh, actions)}},
          t('merchants.suspend'), h('span', {class: 'visually-hidden'}, ` ${merchant.login}`)),
    ],
    context,
  });
  replace(container, list.element, createForm(list.refresh));
}

function suspend(merchant, refresh, actions) {
  reasonForm(actions, {
    title: t('merchants.suspend_title', {login: merchant.login}),
    explain: t('merchants.suspend_explain'),
    confirm: t('merchants.suspend'),
    send: (reason) => api.request('PUT', `/v1/admin/merchants/${encodeURIComponent(merchant.merchant_id)}/suspension`,
      {body: {reason}, key: api.newKey()}),
    done: t('merchants.suspended', {login: merchant.login}),
    refresh,
  });
}

async function reinstate(merchant, button, refresh, actions) {
  await busy(button, async () => {
    try {
      await api.request('DELETE', `/v1/admin/merchants/${encodeURIComponent(merchant.merchant_id)}/suspension`, {key: api.newKey()});
      await refresh(t('merchants.reinstated', {login: merchant.login}));
    } catch (error) {
      replace(actions, h('p', {class: 'error', role: 'alert'}, errorText(error)));
    }
  });
}

function createForm(refresh) {
  const fields = [
    field({name: 'login', label: t('merchants.login'), hint: t('merchants.login_hint'), props: {autocomplete: 'off'}}),
    field({name: 'password', label: t('merchants.password'), type: 'password', hint: t('merchants.password_hint'), props: {autocomplete: 'new-password'}}),
    field({name: 'name', label: t('merchants.name')}),
    field({name: 'business_number', label: t('merchants.business_number'), hint: '123-45-67890'}),
    field({name: 'bank_account', label: t('merchants.bank_account')}),
    field({name: 'category', label: t('merchants.category'), hint: t('merchants.optional')}),
    field({name: 'annual_revenue', label: t('merchants.annual_revenue'), hint: t('merchants.optional'), props: {inputmode: 'numeric'}}),
  ];
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('merchants.create'));
  const form = h('form', {novalidate: true}, fields.map((item) => item.row), submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors(fields, message);
    const body = {};
    for (const item of fields) {
      const value = item.input.value.trim();
      if (value !== '' || !['category', 'annual_revenue'].includes(item.name)) body[item.name] = value;
    }
    busy(submit, async () => {
      try {
        await api.request('POST', '/v1/admin/merchants', {body});
        for (const item of fields) item.input.value = '';
        showMessage(message, {kind: 'success', text: t('merchants.created', {login: body.login})});
        await refresh();
      } catch (error) {
        showError(fields, message, error);
      }
    });
  });
  return h('section', {'aria-labelledby': 'merchant-new'}, h('h2', {id: 'merchant-new'}, t('merchants.new')), form);
}
