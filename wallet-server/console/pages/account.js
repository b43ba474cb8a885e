// One's own account: change the password (any role); for an admin, add another admin.

import * as api from '../api.js';
import {h, replace} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy} from '../form.js';
import {t} from '../i18n.js';

export async function render(container, context) {
  replace(container, passwordForm(), context.session.role === 'admin' ? adminForm() : null);
}

function passwordForm() {
  const current = field({name: 'current_password', label: t('account.current'), type: 'password', props: {autocomplete: 'current-password'}});
  const next = field({name: 'new_password', label: t('account.new'), type: 'password', hint: t('merchants.password_hint'), props: {autocomplete: 'new-password'}});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('account.change'));
  const form = h('form', {novalidate: true}, current.row, next.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([current, next], message);
    busy(submit, async () => {
      try {
        await api.request('POST', '/v1/me/password', {body: {current_password: current.input.value, new_password: next.input.value}});
        current.input.value = '';
        next.input.value = '';
        showMessage(message, {kind: 'success', text: t('account.changed')});
      } catch (error) {
        if (error.code === 'invalid_credentials') error = {status: 422, message: `current_password: ${t('account.wrong_current')}`};
        showError([current, next], message, error);
      }
    });
  });
  return h('section', {'aria-labelledby': 'account-password'}, h('h2', {id: 'account-password'}, t('account.password_title')),
    h('p', null, t('account.password_intro')), form);
}

function adminForm() {
  const login = field({name: 'login', label: t('account.admin_login'), hint: t('merchants.login_hint'), props: {autocomplete: 'off'}});
  const password = field({name: 'password', label: t('account.admin_password'), type: 'password', hint: t('merchants.password_hint'), props: {autocomplete: 'new-password'}});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('account.add_admin'));
  const form = h('form', {novalidate: true}, login.row, password.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([login, password], message);
    busy(submit, async () => {
      try {
        const created = await api.request('POST', '/v1/admin/admins', {body: {login: login.input.value.trim(), password: password.input.value}});
        login.input.value = '';
        password.input.value = '';
        showMessage(message, {kind: 'success', text: t('account.admin_added', {login: created.login})});
      } catch (error) {
        showError([login, password], message, error);
      }
    });
  });
  return h('section', {'aria-labelledby': 'account-admin'}, h('h2', {id: 'account-admin'}, t('account.admin_title')), form);
}
