//! `cni-conflist`: parse the command line, dispatch to the library, print, exit
//! (0 ok, 1 problems found / operation failed, 2 usage error).

mod cli;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use cni_conflist::create::{self, CreateContext, CreateRequest};
use cni_conflist::host::{self, HostSnapshot};
use cni_conflist::model::{ConfDir, ConfFile, ConfList, Lookup};
use cni_conflist::runtime::{Runtime, netns, request};
use cni_conflist::{doctor, inspect, podman, remove, store, validate};

use crate::cli::{Cli, Command, CreateArgs, ExecArgs, ValidateArgs, Verb};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Create(a) => cmd_create(cli, a),
        Command::Validate(a) => cmd_validate(cli, a),
        Command::Ls => {
            let rows = inspect::rows(&ConfDir::read(&cli.dir));
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", inspect::render_rows(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { name } => {
            let dir = ConfDir::read(&cli.dir);
            let (file, list) = find_network(&dir, name)?;
            let view = inspect::view(file, list);
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", inspect::render_text(&view));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rm { name, force } => cmd_rm(cli, name, *force),
        Command::Exec(a) => cmd_exec(cli, a),
        Command::Doctor { name, fix } => cmd_doctor(cli, name.as_deref(), *fix),
    }
}

fn cni_path(cli: &Cli) -> Vec<PathBuf> {
    cli.cni_path
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn runtime(cli: &Cli) -> Runtime {
    Runtime {
        cni_path: cni_path(cli),
        cache_dir: cli.cache_dir.clone(),
    }
}

/// The network libcni would load by `name` (names are validated: no paths).
fn find_network<'a>(dir: &'a ConfDir, name: &str) -> Result<(&'a ConfFile, &'a ConfList)> {
    cni_core::validate::network_name(name)
        .map_err(|e| anyhow!("invalid network name {name:?}: {}", e.msg))?;
    match dir.lookup(name) {
        Lookup::Found(file) => match &file.list {
            Ok(list) => Ok((file, list)),
            Err(e) => Err(anyhow!("{}: {e}", file.path.display())),
        },
        Lookup::Aborted(file, e) => bail!(
            "libcni stops at {} before reaching network {name:?}: {e}",
            file.path.display()
        ),
        Lookup::NotFound => bail!(
            "no net configuration with name {name:?} in {}",
            dir.dir.display()
        ),
    }
}

fn random_bytes() -> [u8; 5] {
    let mut buf = [0u8; 5];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf
}

fn cmd_create(cli: &Cli, a: &CreateArgs) -> Result<ExitCode> {
    let req = CreateRequest {
        name: a.name.clone(),
        driver: a.driver.clone(),
        subnets: a.subnet.clone(),
        gateways: a.gateway.clone(),
        ip_ranges: a.ip_range.clone(),
        internal: a.internal,
        ipv6: a.ipv6,
        ipam_driver: a.ipam_driver.clone(),
        interface_name: a.interface_name.clone(),
        opts: a.opt.clone(),
        labels: a.label.clone(),
        cni_version: a.cni_version.clone(),
        disable_dns: a.disable_dns,
        ipam_data_dir: a.ipam_data_dir.clone(),
    };
    let host = HostSnapshot::read()?;
    let dnsname_available = cni_conflist::runtime::invoke::find("dnsname", &cni_path(cli)).is_ok();
    let _lock = if a.dry_run {
        None
    } else {
        Some(store::lock_dir(&cli.dir)?)
    };
    let dir = ConfDir::read(&cli.dir);
    let mut random = random_bytes;
    let mut ctx = CreateContext {
        dir: &dir,
        host: &host,
        dnsname_available,
        random: &mut random,
    };
    let net = create::plan(&req, &mut ctx)?;
    let bytes = podman::render(&net)?;
    if a.dry_run {
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(ExitCode::SUCCESS);
    }
    let path = cli.dir.join(format!("{}.conflist", net.name));
    store::write_atomic(&path, &bytes, 0o644, false)?;
    if cli.json {
        let file = ConfFile::load(&path);
        let list = file.list.as_ref().map_err(|e| anyhow!("{e}"))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&inspect::view(&file, list))?
        );
    } else {
        println!("{}", net.name);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_validate(cli: &Cli, a: &ValidateArgs) -> Result<ExitCode> {
    let opts = validate::Options {
        cni_path: cni_path(cli),
        host: HostSnapshot::read().ok(),
    };
    let dir = ConfDir::read(&cli.dir);
    let findings = if a.all || a.targets.is_empty() {
        validate::validate_dir(&dir, &opts)
    } else {
        let mut out = Vec::new();
        for target in &a.targets {
            let file = if target.contains('/') || Path::new(target).is_file() {
                if !Path::new(target).is_file() {
                    bail!("no such file: {target}");
                }
                ConfFile::load(Path::new(target))
            } else {
                cni_core::validate::network_name(target)
                    .map_err(|e| anyhow!("invalid network name {target:?}: {}", e.msg))?;
                match dir.lookup(target) {
                    Lookup::Found(f) | Lookup::Aborted(f, _) => f.clone(),
                    Lookup::NotFound => bail!(
                        "no net configuration with name {target:?} in {}",
                        dir.dir.display()
                    ),
                }
            };
            out.extend(validate::validate_file(&file, &opts));
            out.extend(
                validate::validate_cross(&dir, &opts)
                    .into_iter()
                    .filter(|f| same_file(&f.file, &file.path)),
            );
        }
        out
    };
    let errors = findings
        .iter()
        .filter(|f| f.severity == validate::Severity::Error)
        .count();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == validate::Severity::Warning)
        .count();
    if cli.json {
        let doc = serde_json::json!({"findings": findings, "errors": errors, "warnings": warnings});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for f in &findings {
            println!("{f}");
        }
        println!("{errors} error(s), {warnings} warning(s)");
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn cmd_rm(cli: &Cli, name: &str, force: bool) -> Result<ExitCode> {
    let _lock = store::lock_dir(&cli.dir)?;
    let host = if force {
        Some(HostSnapshot::read()?)
    } else {
        None
    };
    let removed = remove::remove_network(
        &cli.dir,
        name,
        &cli.cache_dir,
        force,
        host.as_ref(),
        &mut host::delete_link,
    )?;
    if cli.json {
        let doc = serde_json::json!({
            "file": removed.file, "bridge_deleted": removed.bridge_deleted,
            "bridge_kept": removed.bridge_kept, "still_defined_by": removed.still_defined_by,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{name}");
    eprintln!("removed {}", removed.file.display());
    if let Some(b) = &removed.bridge_deleted {
        eprintln!("deleted bridge {b}");
    }
    if let Some(why) = &removed.bridge_kept {
        eprintln!("kept the bridge: {why}");
    }
    for f in &removed.still_defined_by {
        eprintln!("note: {name:?} is still defined by {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

fn cmd_exec(cli: &Cli, a: &ExecArgs) -> Result<ExitCode> {
    let dir = ConfDir::read(&cli.dir);
    let (_, list) = find_network(&dir, &a.name)?;
    let rt = runtime(cli);
    match a.verb {
        Verb::Gc => {
            let valid: Vec<(String, String)> = rt
                .attachments(list)
                .into_iter()
                .filter(|att| netns::attachment_alive(att) != Some(false))
                .map(|att| (att.container_id, att.if_name))
                .collect();
            rt.gc(list, &valid)?;
        }
        Verb::Status => rt.status(list)?,
        verb => {
            let id = std::env::var("CNI_CONTAINERID").ok();
            let conf = request::runtime_conf(
                &a.netns,
                &a.ifname,
                id.as_deref(),
                &env("CNI_ARGS"),
                &env("CAP_ARGS"),
            )?;
            match verb {
                Verb::Add => {
                    let result = rt.add(list, &conf).with_context(|| {
                        format!(
                            "exec add {} failed (`cni-conflist exec del {} {}` removes what the \
                             plugins before the failing one created)",
                            a.name,
                            a.name,
                            a.netns.display()
                        )
                    })?;
                    let mut out = Vec::new();
                    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
                    serde::Serialize::serialize(&result, &mut ser)?;
                    println!("{}", String::from_utf8_lossy(&out));
                }
                Verb::Check => rt.check(list, &conf)?,
                _ => rt.del(list, &conf)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_doctor(cli: &Cli, name: Option<&str>, fix: bool) -> Result<ExitCode> {
    if let Some(n) = name {
        cni_core::validate::network_name(n)
            .map_err(|e| anyhow!("invalid network name {n:?}: {}", e.msg))?;
    }
    let rt = runtime(cli);
    let dir = ConfDir::read(&cli.dir);
    let env = doctor::Environment::read().context("reading the host's state")?;
    let mut report = doctor::diagnose(&dir, &rt, &env, name);
    if fix {
        doctor::fix(&dir, &rt, &env, &mut report);
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", doctor::render(&report));
    }
    Ok(if report.problems_left() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
