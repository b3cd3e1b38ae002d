-- :checkhealth codeexec
local M = {}

function M.check()
  local health = vim.health
  health.start('codeexec')

  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim 0.11 or newer is needed (vim.lsp.config / vim.lsp.enable)')
    return
  end

  local config = vim.lsp.config.codeexec
  if not config then
    health.error('no `codeexec` LSP config: put editors/nvim on the runtimepath')
    return
  end
  local cmd = config.cmd
  if type(cmd) == 'table' and cmd[1] then
    local exe = vim.fn.exepath(cmd[1])
    if exe ~= '' then
      health.ok(('server command: `%s` (%s)'):format(table.concat(cmd, ' '), exe))
    else
      local why = '`%s` is not executable (not on the PATH Neovim was started with)'
      health.error(why:format(cmd[1]), {
        'pipx install /path/to/codeexec-lsp (your clone), or pipx install git+<repository URL>',
        "vim.lsp.config('codeexec', { cmd = { '/path/to/codeexec-lsp/.venv/bin/codeexec-lsp' } })",
      })
    end
  end

  if vim.lsp.is_enabled('codeexec') then
    health.ok('enabled')
  else
    health.warn("not enabled: call vim.lsp.enable('codeexec') or require('codeexec').setup()")
  end

  local clients = vim.lsp.get_clients({ name = 'codeexec' })
  if #clients == 0 then
    health.info('no codeexec client is running (it starts with a Python buffer)')
  end
  for _, client in ipairs(clients) do
    local provider = client.server_capabilities.executeCommandProvider
    local commands = type(provider) == 'table' and provider.commands or {}
    health.ok(
      ('client %d: root %s, position encoding %s, commands %s'):format(
        client.id,
        client.root_dir or '(none)',
        client.offset_encoding,
        table.concat(commands, ', ')
      )
    )
  end

  if vim.g.codeexec_no_keymaps then
    health.info('default keymaps are off (vim.g.codeexec_no_keymaps)')
  else
    health.info('keymap prefix: ' .. (vim.g.codeexec_keymap_prefix or '<leader>e'))
  end
end

return M
