// Builds against the installed rcukit package through find_package(rcukit).
#include <cstdio>

#include <rcukit/rcukit.hpp>

int main() {
  struct node : rcukit::rcu::retirable {
    int v = 7;
  };
  auto* n = new node;
  {
    rcukit::rcu::read_guard<> g;
    std::printf("consumer: read %d inside a read side\n", n->v);
  }
  rcukit::rcu::retire(n);
  rcukit::rcu::barrier();
  std::printf("consumer: ok\n");
  return 0;
}
