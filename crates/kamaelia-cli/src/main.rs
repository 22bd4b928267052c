//! The `kamaelia` command-line program.

fn main() {
    println!("kamaelia: nothing here yet");
}
