// Citizens: search by login prefix, page through them, lock a wallet (a lost phone: its sessions
// end at once, payments, gifts and charges are refused, the balance is kept) and unlock it.

import * as api from '../api.js';
import {h, replace} from '../dom.js';
import {busy} from '../form.js';
import {won} from '../format.js';
import {t, errorText} from '../i18n.js';
import {searchList, reasonForm} from './list.js';

export async function render(container, context) {
  const list = await searchList({
    path: '/v1/admin/citizens',
    label: t('citizens.search'),
    hint: t('citizens.search_hint'),
    caption: t('citizens.table'),
    headers: ['login', 'wallet_id', 'balance', 'status', 'actions'].map((name) => t('citizens.' + name)),
    row: (citizen, refresh, actions) => [
      citizen.login,
      h('code', null, citizen.wallet_id),
      won(citizen.balance),
      h('span', {class: 'badge badge-' + citizen.status}, t('status.' + citizen.status)),
      citizen.status === 'locked'
        ? h('button', {type: 'button', on: {click: (event) => unlock(citizen, event.currentTarget, refresh, actions)}},
          t('citizens.unlock'), h('span', {class: 'visually-hidden'}, ` ${citizen.login}`))
        : h('button', {type: 'button', on: {click: () => lock(citizen, refresh, actions)}},
          t('citizens.lock'), h('span', {class: 'visually-hidden'}, ` ${citizen.login}`)),
    ],
    context,
  });
  replace(container, list.element);
}

function lock(citizen, refresh, actions) {
  reasonForm(actions, {
    title: t('citizens.lock_title', {login: citizen.login}),
    explain: t('citizens.lock_explain'),
    confirm: t('citizens.lock'),
    send: (reason) => api.request('PUT', `/v1/admin/citizens/${encodeURIComponent(citizen.login)}/lock`,
      {body: {reason}, key: api.newKey()}),
    done: t('citizens.locked', {login: citizen.login}),
    refresh,
  });
}

async function unlock(citizen, button, refresh, actions) {
  await busy(button, async () => {
    try {
      await api.request('DELETE', `/v1/admin/citizens/${encodeURIComponent(citizen.login)}/lock`, {key: api.newKey()});
      await refresh(t('citizens.unlocked', {login: citizen.login}));
    } catch (error) {
      replace(actions, h('p', {class: 'error', role: 'alert'}, errorText(error)));
    }
  });
}
